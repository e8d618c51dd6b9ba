"""``python -m sandbox_kit``: the same as the ``sandbox-kit`` command."""

import sys

from sandbox_kit.cli import main

sys.exit(main())
