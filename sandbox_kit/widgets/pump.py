"""One background pump per view: the only place a view's widgets change from a thread.

Views never ``print`` or use ``with output:`` from threads (output would land in whatever
cell runs, or vanish in Voilà); a pump calls the view's ``refresh`` at a fixed, low rate and
the view sets widget traits only when a value changed (pitfalls reference, §1).

Pumps skip their ticks while nobody is looking: once :func:`pause_while_unseen` is given a
check (the dashboard's :class:`~sandbox_kit.widgets.presence.Presence`, when served with
culling), a kernel whose page is gone stops sending widget updates, goes idle, and can be
culled (issue 13). The check is kernel-wide: a Voilà kernel serves exactly one page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import ipywidgets as W

log = logging.getLogger("sandbox_kit.widgets")

# Whether a frontend still shows this kernel's widgets; None: assume one always does.
_seen: Callable[[], bool] | None = None


def pause_while_unseen(seen: Callable[[], bool] | None) -> None:
    """Make every pump of this kernel skip its ticks while ``seen()`` is False (None: never).

    Clicks still refresh a view at once (:meth:`Pump.run_once`): they prove someone looks.
    """
    global _seen  # noqa: PLW0603 - one page per kernel: the fact is kernel-wide
    _seen = seen


class Pump:
    """Calls ``tick`` every ``period`` seconds in one daemon thread until stopped.

    Args:
        tick: the view's refresh; exceptions are logged, never raised into the thread.
        period: seconds between ticks.
        name: thread name, for debugging.
        start: start the thread now (tests pass False and call :meth:`run_once`).
    """

    def __init__(
        self, tick: Callable[[], None], period: float, *, name: str, start: bool = True
    ) -> None:
        self._tick = tick
        self.period = period
        self._stop = threading.Event()
        # Re-entrant: a refresh may change a filter whose observer asks for a refresh.
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        if start:
            self._thread.start()

    def run_once(self) -> None:
        """Tick now, in the calling thread (never twice at once)."""
        with self._lock:
            try:
                self._tick()
            except Exception:  # a view must survive a failed refresh (DB hiccup, bad file)
                log.exception("refresh failed")

    def locked(self) -> AbstractContextManager[bool]:
        """The lock ticks run under: hold it to change a view's state from a click handler,
        so a click and the pump thread never interleave (``with view.pump.locked(): ...``)."""
        return self._lock

    def stop(self) -> None:
        """Stop ticking (the thread ends within one period)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            seen = _seen
            if seen is None or seen():
                self.run_once()


class View(W.VBox):  # type: ignore[misc]
    """A box whose content a pump refreshes; :meth:`close` stops it and closes every child."""

    pump: Pump

    def close(self) -> None:
        """Stop refreshing and close this view with all its widgets."""
        pump = getattr(self, "pump", None)  # None when construction failed before it
        if pump is not None:
            pump.stop()
        close_tree(self)


def close_tree(widget: W.Widget) -> None:
    """Close a widget and all its descendants (``Widget.close`` leaves children open)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    W.Widget.close(widget)


def keep_value(dropdown: W.Dropdown, options: Sequence[tuple[str, object]]) -> None:
    """Replace a dropdown's options without losing the user's choice."""
    if [tuple(o) for o in options] == [tuple(o) for o in dropdown.options]:
        return
    chosen = dropdown.value
    dropdown.options = options  # ipywidgets selects the first option here (if any was)...
    values = [value for _, value in options]
    if chosen in values:
        dropdown.value = chosen  # ...so put the user's choice back
    elif values and dropdown.value not in values:
        dropdown.value = values[0]
