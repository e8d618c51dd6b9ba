"""Package data and the installable surface: the dashboard notebook, the sample models,
``sandbox-kit examples``, ``--version``, and the PostgreSQL extra's error.

The wheel itself is built, installed and served in tests/test_wheel.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import sandbox_kit
from sandbox_kit import ValidationError
from sandbox_kit.assets import copy_examples, dashboard_notebook, examples_folder
from tests.conftest import ROOT, cli

NO_DB = {"SANDBOX_DB_URL": ""}


def test_a_source_checkout_serves_the_repository_files() -> None:
    # `pip install -e .` (the development install) has no sandbox_kit/data/ folder: the files
    # are read where the repository keeps them, so edits show without a reinstall.
    assert dashboard_notebook() == ROOT / "notebooks" / "dashboard.ipynb"
    assert examples_folder() == ROOT / "models" / "examples"
    assert json.loads(dashboard_notebook().read_text())["cells"]


def test_the_wheel_is_told_to_carry_them() -> None:
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    included = wheel["targets"]["wheel"]["force-include"]
    assert included == {
        "notebooks/dashboard.ipynb": "sandbox_kit/data/dashboard.ipynb",
        "models/examples": "sandbox_kit/data/examples",
    }


def test_copy_examples_copies_every_sample(tmp_path: Path) -> None:
    copies = copy_examples(tmp_path / "mine")
    names = {p.name for p in copies}
    assert {"dmo.py", "rmo.py", "so.py"} <= names
    for copy in copies:
        original = examples_folder() / copy.relative_to(tmp_path / "mine")
        assert copy.read_bytes() == original.read_bytes()
    assert not any(p.suffix == ".pyc" or "__pycache__" in p.parts for p in copies)


def test_copy_examples_never_overwrites(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "rmo.py").write_text("# my edits\n")
    with pytest.raises(ValidationError, match=r"rmo\.py: already exists"):
        copy_examples(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["rmo.py"]  # nothing copied
    assert (dest / "rmo.py").read_text() == "# my edits\n"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValidationError, match="not a folder"):
        copy_examples(tmp_path / "file")


def test_cli_examples(tmp_path: Path) -> None:
    done = cli("examples", str(tmp_path / "ex"), home=tmp_path, env=NO_DB)
    assert done.returncode == 0, done.stderr
    listed = [Path(line) for line in done.stdout.splitlines()]
    assert {p.name for p in listed} >= {"dmo.py", "rmo.py", "so.py"}
    assert all(p.is_file() for p in listed)
    assert "sandbox-kit upload" in done.stderr
    again = cli("examples", str(tmp_path / "ex"), home=tmp_path, env=NO_DB)
    assert again.returncode == 1
    assert again.stderr.startswith("Error: ") and "already exists" in again.stderr


def test_cli_examples_default_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox_kit", "examples"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "examples" / "dmo.py").is_file()


def test_version_comes_from_one_place(tmp_path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "sandbox_kit/__init__.py"
    done = cli("--version", home=tmp_path, env=NO_DB)
    assert done.returncode == 0
    assert done.stdout.strip() == f"sandbox-kit {sandbox_kit.__version__}"


def test_postgresql_without_its_extra_names_the_extra(home: Path) -> None:
    # psycopg made unimportable, as in an install without sandbox_kit[postgres].
    code = (
        "import sys; sys.modules['psycopg'] = None; from sandbox_kit.cli import main; "
        "sys.exit(main(['--home', sys.argv[1], 'models']))"
    )
    url = "postgresql+psycopg://u:s3cret@127.0.0.1:5432/x"
    done = subprocess.run(
        [sys.executable, "-c", code, str(home)],
        capture_output=True,
        text=True,
        env={"SANDBOX_DB_URL": url, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(
        "Error: postgresql+psycopg://u:***@127.0.0.1:5432/x needs the PostgreSQL driver"
    )
    assert "pip install 'sandbox_kit[postgres]'" in done.stderr
    assert "s3cret" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
