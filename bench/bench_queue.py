"""Queue throughput: N short jobs through the sandbox against the same N scripts through
``xargs -P <limit>`` (the baseline, measured in the same run), at limit = CPU count.

Target (issue 9): 200 jobs of 0.5 s within 1.25x of xargs; peak running never above the limit.
``--jobs`` and ``--length`` change the size (the defaults are the issue's).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import model_file, scratch
from sqlalchemy import select

from sandbox_kit.db import JobRow


def source(length: float) -> str:
    return f"import time\nprint('working', flush=True)\ntime.sleep({length})\n"


def with_xargs(path: str, jobs: int, slots: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(slots), "-n", "1", sys.executable, "-u"],
        input=(path + "\n") * jobs,
        text=True,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - t0


def with_sandbox(jobs: int, slots: int, length: float) -> tuple[float, int, int]:
    sb, home = scratch(max_running=slots)
    model = sb.upload(model_file(home, "short.py", source(length)), "DMO")
    t0 = time.perf_counter()
    handles = [sb.run(model.id) for _ in range(jobs)]
    # Poll slowly (the benchmark must not compete with the jobs for the CPU); the peak comes
    # from the recorded claim and end times afterwards, exactly.
    while not all(info.status.terminal for info in sb.jobs(limit=jobs)):
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    ok = sum(h.refresh().status.value == "success" for h in handles)
    with sb.db.read() as s:
        spans = s.execute(select(JobRow.claimed_at, JobRow.finished_at)).all()
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return wall, peak, ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--length", type=float, default=0.5)
    args = parser.parse_args()
    slots = os.cpu_count() or 1
    _, home = scratch()
    path = str(model_file(home, "short.py", source(args.length)))
    base = with_xargs(path, args.jobs, slots)
    wall, peak, ok = with_sandbox(args.jobs, slots, args.length)
    print(
        f"queue: {args.jobs} jobs of {args.length} s, limit {slots}: xargs -P {slots} "
        f"{base:.1f} s, sandbox {wall:.1f} s, {ok}/{args.jobs} succeeded, peak running {peak}"
    )
    print(f"queue: ratio {wall / base:.2f} (target <= 1.25; peak {peak} <= limit {slots})")


if __name__ == "__main__":
    main()
