"""Tests for the package surface: exports, docstrings, lazy imports and typing marker."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox_kit
from tests.conftest import ROOT

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
        # Everything a supervisor imports on its way to recording a job's end (issue 9).
        (
            "sandbox_kit.supervisor, sandbox_kit.executor, sandbox_kit.lifecycle, "
            "sandbox_kit.results, sandbox_kit.oplog",
            {"ipywidgets", "voila", "sqlalchemy", "alembic", "pandas", "numpy"},
        ),
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


def _requirement(text: str) -> tuple[str, str]:
    """``name`` (normalised, extras dropped) and the version specifier of a requirement."""
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", text)
    assert match is not None, text
    return match.group(1).lower().replace("_", "-"), match.group(3).replace(" ", "")


def test_environment_yml_lists_the_same_runtime_dependencies() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_requirement(r) for r in project["dependencies"])
    listed: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        # Conda dependencies, and the pip section's packages (those on PyPI only, issue 15).
        item = re.match(r"  - ([^#]+)$", line) or re.match(r"      - ([^-#][^#]*)$", line)
        if item and not item.group(1).startswith(("python", "pip")):
            name, spec = _requirement(item.group(1))
            listed[name] = spec
    assert listed == wanted


def test_widget_classes_do_not_shadow_ipywidgets_attributes() -> None:
    # A view that names an attribute `log`, `layout` or a method `_compare` breaks ipywidgets
    # (seen: `log` is the widget's logger trait, `_compare` its trait comparison).
    import ipywidgets as W

    taken = set(dir(W.VBox())) - {"close", "__init__", "layout", "children"}
    for path in sorted((ROOT / "sandbox_kit" / "widgets").glob("*.py")):
        source = path.read_text()
        mine = set(re.findall(r"self\.(\w+)\s*[:=]", source))
        mine |= set(re.findall(r"    def (\w+)\(self", source))
        assert not mine & taken, f"{path.name}: {sorted(mine & taken)}"
    W.Widget.close_all()
