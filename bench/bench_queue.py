"""Queue: 30 jobs against a limit of 2 running; never more than 2 run, all 30 finish.

The figure is the wall time against the ideal (30 jobs x their length / 2 slots).
"""

from __future__ import annotations

import time

from common import model_file, scratch

JOBS, SLOTS, LENGTH = 30, 2, 0.5
SOURCE = f"import time\nprint('working', flush=True)\ntime.sleep({LENGTH})\n"


def main() -> None:
    sb, home = scratch(max_running=SLOTS)
    model = sb.upload(model_file(home, "short.py", SOURCE), "DMO")
    t0 = time.perf_counter()
    jobs = [sb.run(model.id) for _ in range(JOBS)]
    peak = 0
    while True:
        states = [j.refresh().status for j in jobs]
        peak = max(peak, sum(s.value == "running" for s in states))
        if all(s.terminal for s in states):
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    ok = sum(s.value == "success" for s in states)
    ideal = JOBS * LENGTH / SLOTS
    print(
        f"queue: {JOBS} jobs, limit {SLOTS}: peak running {peak}, {ok}/{JOBS} succeeded, "
        f"wall {wall:.1f} s against ideal {ideal:.1f} s (ratio {wall / ideal:.2f})"
    )


if __name__ == "__main__":
    main()
