"""Sizes, durations and times as people read them; shared by the CLI and the widgets."""

from __future__ import annotations

from datetime import datetime


def size(n: int) -> str:
    """``512 B``, ``1.5 KB``, ``10.0 MB``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024**2:.1f} MB"


def duration(seconds: float | None, *, missing: str = "—") -> str:
    """``4.1 s``, ``12 min 3 s``, ``2 h 5 min``, or ``missing``."""
    if seconds is None:
        return missing
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def when(moment: datetime | None, *, missing: str = "—") -> str:
    """Local date and time of day, or ``missing``."""
    return missing if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
