"""Helpers shared by the benchmarks: a scratch sandbox and a model file written on the fly."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from sandbox_kit import Sandbox, Settings


def scratch(**settings: object) -> tuple[Sandbox, Path]:
    """A sandbox in a fresh temporary folder."""
    home = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    return Sandbox(home=home, settings=Settings(**settings)), home  # type: ignore[arg-type]


def model_file(home: Path, name: str, source: str) -> Path:
    """Write a model's source next to the sandbox and return its path."""
    path = home / name
    path.write_text(source)
    return path


def median(values: list[float]) -> float:
    """The median, for repeated measurements on a noisy machine."""
    return statistics.median(values)
