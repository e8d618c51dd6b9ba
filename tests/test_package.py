"""Tests for the package surface: exports, docstrings, lazy imports and typing marker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox_kit

PACKAGE = Path(sandbox_kit.__file__).resolve().parent
MODULES = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if "migrations" not in path.relative_to(PACKAGE).parts
    and (not path.name.startswith("_") or path.name == "__init__.py")
)


def test_all_is_sorted_and_unique() -> None:
    assert sandbox_kit.__all__ == sorted(sandbox_kit.__all__)
    assert len(set(sandbox_kit.__all__)) == len(sandbox_kit.__all__)


@pytest.mark.parametrize("name", sandbox_kit.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(sandbox_kit, name)
    assert value is not None
    assert getattr(value, "__name__", name) == name
    assert name in dir(sandbox_kit)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = sandbox_kit.no_such_name
    assert not hasattr(sandbox_kit, "registry_internals")


def test_version() -> None:
    assert sandbox_kit.__version__ == "0.1.0"
    assert "__version__" in dir(sandbox_kit)


def test_modules_were_found() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {"__init__.py", "sandbox.py", "registry.py", "db.py", "cli.py"} <= names
    assert not any(n.startswith("migrations/") for n in names)


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(PACKAGE).as_posix() for p in MODULES])
def test_public_module_has_docstring(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    doc = ast.get_docstring(tree)
    assert doc, f"{path.relative_to(PACKAGE)} has no module docstring"
    assert doc.strip()


def _imported_after(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in json.loads(done.stdout)}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("sandbox_kit.supervisor", {"ipywidgets", "voila", "sqlalchemy", "alembic"}),
        ("sandbox_kit.cli", {"ipywidgets", "voila"}),
        ("sandbox_kit", {"ipywidgets", "voila", "sqlalchemy"}),
    ],
)
def test_light_imports(module: str, forbidden: set[str]) -> None:
    loaded = _imported_after(f"import {module}")
    assert "sandbox_kit" in loaded
    assert loaded & forbidden == set()


def test_light_import_check_can_fail() -> None:
    # The check above would see a heavy import: the facade does pull in the database layer.
    assert "sqlalchemy" in _imported_after("import sandbox_kit.sandbox")


def test_py_typed_exists() -> None:
    marker = PACKAGE / "py.typed"
    assert marker.is_file()
