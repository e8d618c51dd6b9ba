"""Is the page still there? A heartbeat from the browser, so a kernel can tell it was left.

A kernel cannot see its websocket close, and a page killed without its unload beacon (a
crash, a laptop lid, a dropped network) never says goodbye. So the page says "still here":
a small script clicks a hidden button every few seconds, which reaches the kernel as an
ordinary widget message. While the clicks arrive, the views refresh; once they stop for the
grace period, :func:`~sandbox_kit.widgets.pump.pause_while_unseen` makes every pump skip its
ticks, the kernel sends nothing more, and Jupyter Server's culler shuts it down as idle (the
timings are in :mod:`sandbox_kit.culling`). A page that comes back (a throttled background
tab) resumes at its next heartbeat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import ipywidgets as W

from sandbox_kit.culling import CullPlan

_SCRIPT = """
<script>
(function () {
  if (window.__skHeartbeat) { return; }
  window.__skHeartbeat = true;
  setInterval(function () {
    document.querySelectorAll('.sk-heartbeat').forEach(function (b) { b.click(); });
  }, %d);
})();
</script>
"""


class Presence:
    """Heartbeats from the page that shows this kernel's widgets.

    Args:
        plan: the cull budget, which sets the heartbeat period and the grace.
        clock: seconds, monotonic (tests pass a fake one).

    Attributes:
        button: the hidden widget the page's script clicks; put it in the layout.
        beats: heartbeats received so far.
    """

    def __init__(self, plan: CullPlan, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self._clock = clock
        # The page is being rendered as this runs: count that as seen.
        self._last = clock()
        self._lock = threading.Lock()
        self.beats = 0
        self.button = W.Button(description="", layout=W.Layout(display="none"))
        self.button.add_class("sk-heartbeat")
        self.button.on_click(lambda _: self.beat())

    def beat(self) -> None:
        """Note a heartbeat (what a click on the hidden button does)."""
        with self._lock:
            self._last = self._clock()
            self.beats += 1

    def seen(self) -> bool:
        """True while the last heartbeat is younger than the grace period."""
        with self._lock:
            return self._clock() - self._last < self.plan.grace_s

    def script(self) -> str:
        """The page's side: HTML with the script that sends the heartbeats."""
        return _SCRIPT % (self.plan.heartbeat_s * 1000)

    def close(self) -> None:
        """Close the hidden button."""
        self.button.close()
