"""How long a dashboard kernel outlives its page: one budget split between page and server.

Voilà starts one kernel per page view and shuts it down when the page says goodbye (its
unload beacon). A page that never says it (a browser crash, a laptop lid, a dropped network,
voila#55/#479/#849) leaves the kernel to Jupyter Server's culler, which shuts down kernels
idle for ``cull_idle_timeout`` seconds, checking every ``cull_interval``. But widget updates
count as kernel activity, so a kernel whose views keep refreshing would never be idle
(pitfalls reference, §3). Hence two halves:

- in the kernel, the page sends a heartbeat every :attr:`CullPlan.heartbeat_s`; the views
  stop pushing updates once none has arrived for :attr:`CullPlan.grace_s` (the kernel goes
  quiet: see :mod:`sandbox_kit.widgets.presence`);
- in the server, the culler shuts down a kernel quiet for :attr:`CullPlan.idle_timeout_s`,
  connected or not (``cull_connected``: a half-open connection from a vanished laptop still
  counts as connected, while a live page is never quiet thanks to its heartbeat).

The three parts add up to the ``--cull-after`` budget, so a kernel whose page is gone is shut
down within that many seconds. Jobs are not affected: they never belonged to a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The default budget of ``sandbox-kit serve --cull-after``.
DEFAULT_CULL_AFTER_S = 600
#: The smallest budget that leaves room for a heartbeat, its grace and a culler pass.
MIN_CULL_AFTER_S = 10


@dataclass(frozen=True, slots=True)
class CullPlan:
    """The parts of a cull budget of ``after_s`` seconds (``0``: never cull).

    For the default 600 s: a heartbeat every 30 s, views quiet after 90 s without one, the
    culler checking every 30 s for kernels quiet for 480 s.
    """

    after_s: int

    def __post_init__(self) -> None:
        if self.after_s != 0 and self.after_s < MIN_CULL_AFTER_S:
            raise ValueError(
                f"--cull-after must be 0 (never) or at least {MIN_CULL_AFTER_S} seconds, "
                f"not {self.after_s}"
            )

    @property
    def enabled(self) -> bool:
        """False when kernels are never culled."""
        return self.after_s > 0

    @property
    def heartbeat_s(self) -> int:
        """How often a page proves it is still there (a background tab may be throttled to
        once a minute by the browser; the grace allows for that at the default budget)."""
        return min(30, max(1, self.after_s // 20))

    @property
    def grace_s(self) -> int:
        """Silence after which the views stop pushing updates: three missed heartbeats."""
        return 3 * self.heartbeat_s

    @property
    def interval_s(self) -> int:
        """How often the server's culler looks (``cull_interval``)."""
        return min(60, max(1, self.after_s // 20))

    @property
    def idle_timeout_s(self) -> int:
        """Quiet time after which the culler shuts a kernel down (``cull_idle_timeout``)."""
        return self.after_s - self.grace_s - self.interval_s

    def voila_options(self) -> list[str]:
        """Voilà (Jupyter Server) options that enforce the plan; none when disabled."""
        if not self.enabled:
            return []
        manager = "--MappingKernelManager"
        return [
            f"{manager}.cull_idle_timeout={self.idle_timeout_s}",
            f"{manager}.cull_interval={self.interval_s}",
            f"{manager}.cull_connected=True",
        ]
