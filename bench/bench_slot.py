"""Slot overhead: how long a trivial job holds its slot beyond its model's own run.

The slot is held from the claim to the recorded end (``finished_at - claimed_at``); the
model's own run is the same script run bare with ``subprocess`` in this process (baseline).
Target (issue 9): the median difference is at most 100 ms.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import median, model_file, scratch

from sandbox_kit.db import JobRow

SOURCE = "import time\ntime.sleep(0.03)\nprint('done')\n"
ROUNDS = 15


def bare(path: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-u", path], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def held(sb: object, model_id: int) -> float:
    job = sb.run(model_id)  # type: ignore[attr-defined]
    job.wait(poll=0.02)
    with sb.db.read() as s:  # type: ignore[attr-defined]
        row = s.get(JobRow, job.id)
        assert row is not None and row.finished_at and row.claimed_at
        return (row.finished_at - row.claimed_at).total_seconds()


def main() -> None:
    sb, home = scratch()
    path = model_file(home, "trivial.py", SOURCE)
    model = sb.upload(path, "DMO")
    bare(str(path)), held(sb, model.id)  # warm the page cache
    base = median([bare(str(path)) for _ in range(ROUNDS)])
    ours = median([held(sb, model.id) for _ in range(ROUNDS)])
    print(
        f"slot: bare run {base * 1000:.0f} ms, slot held {ours * 1000:.0f} ms (median of {ROUNDS})"
    )
    print(
        f"slot: ratio {ours / base:.2f}, overhead {(ours - base) * 1000:.0f} ms (target <= 100 ms)"
    )


if __name__ == "__main__":
    main()
