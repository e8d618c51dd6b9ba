"""The files sandbox_kit ships besides its code: the dashboard notebook and the sample models.

In an installed wheel they are package data under ``sandbox_kit/data/`` (hatch's
``force-include`` copies them there from the repository's ``notebooks/dashboard.ipynb`` and
``models/examples/``, see ``pyproject.toml``), found with :mod:`importlib.resources`. In a
source checkout (``pip install -e .``, ``make serve``) the package has no ``data/`` folder, and
they are read where the repository keeps them, so an edit to a sample model shows at once,
without a reinstall (issue 13).
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from sandbox_kit.errors import SandboxKitError, ValidationError

_SOURCE_TREE = Path(__file__).resolve().parents[1]
_SKIPPED = ("__pycache__", ".ipynb_checkpoints")


def dashboard_notebook() -> Path:
    """The notebook Voilà serves as the dashboard."""
    return _locate("dashboard.ipynb", _SOURCE_TREE / "notebooks" / "dashboard.ipynb")


def examples_folder() -> Path:
    """The folder of the sample models (``dmo.py``, ``rmo.py``, ``so.py`` and what they read)."""
    return _locate("examples", _SOURCE_TREE / "models" / "examples")


def copy_examples(dest: str | Path) -> list[Path]:
    """Copy the sample models into ``dest`` (created if needed) for editing; returns the copies.

    Raises:
        ValidationError: ``dest`` is a file, or one of the copies would replace an existing
            file (nothing is copied then).
    """
    target = Path(dest)
    if target.exists() and not target.is_dir():
        raise ValidationError("exists and is not a folder", filename=str(target))
    source = examples_folder()
    wanted = [
        path
        for path in sorted(source.rglob("*"))
        if path.is_file()
        and path.suffix != ".pyc"
        and not any(part in _SKIPPED for part in path.relative_to(source).parts)
    ]
    copies = [target / path.relative_to(source) for path in wanted]
    taken = next((copy for copy in copies if copy.exists()), None)
    if taken is not None:
        raise ValidationError(
            "already exists; copy the examples into another folder or remove it first",
            filename=str(taken),
        )
    for path, copy in zip(wanted, copies, strict=True):
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    return copies


def _locate(name: str, in_source_tree: Path) -> Path:
    packaged = files("sandbox_kit") / "data" / name
    if isinstance(packaged, Path) and packaged.exists():
        return packaged
    if in_source_tree.exists():
        return in_source_tree
    raise SandboxKitError(
        f"{name} is missing from this sandbox_kit installation ({packaged}); reinstall it with "
        "pip install --force-reinstall sandbox_kit"
    )
