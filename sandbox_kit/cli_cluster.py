"""The CLI's ``workers`` command (issue 12), added to the parser of :mod:`sandbox_kit.cli` with
its conventions: ``--json`` for machines, ``Error: <sentence>`` and exit 1 for a refused request
(here: the executor is not ``dask``, or its scheduler does not answer).

::

    sandbox-kit workers [--timeout SECONDS] [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

from sandbox_kit.cli import _print_json, _print_table
from sandbox_kit.errors import ValidationError
from sandbox_kit.humanize import size


def add_commands(sub: Any) -> None:
    """Add ``workers`` to the CLI's subcommands."""
    workers = sub.add_parser(
        "workers",
        help="the Dask cluster's workers: slots in use, memory, running jobs",
        description="List the workers of the Dask cluster SANDBOX_DASK_ADDRESS names "
        "(SANDBOX_EXECUTOR=dask): address, host, slots in use of the worker's slots "
        "resource, memory limit and the ids of the jobs running there.",
    )
    workers.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the scheduler to answer (default 10)",
    )
    workers.add_argument("--json", action="store_true")
    workers.set_defaults(handler=_workers)


def _workers(args: argparse.Namespace) -> int:
    if not args.timeout > 0:  # also refuses nan
        raise ValidationError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    # Settings from the environment only: listing workers needs no registry.
    from sandbox_kit import cluster
    from sandbox_kit.config import Settings

    address = cluster.scheduler_address(Settings.from_env())
    with cluster.connect(address, timeout=args.timeout) as client:
        infos = cluster.workers(client)
    if args.json:
        _print_json([info.to_dict() for info in infos])
        return 0
    rows = [
        [
            info.address,
            info.host,
            f"{info.slots_used}/{info.slots}",
            size(info.memory_bytes) if info.memory_bytes else "no limit",
            ", ".join(info.jobs) or "-",
        ]
        for info in infos
    ]
    _print_table(["ADDRESS", "HOST", "SLOTS", "MEMORY", "JOBS"], rows)
    return 0
