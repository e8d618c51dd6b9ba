"""Result cache: re-running a finished 100-scenario sweep, and what a lookup adds to a miss.

1. A 100-scenario sweep (10 x 10 grid) of a short model runs through the CLI and finishes;
   then the same ``sandbox-kit sweep ... --cache`` is timed end to end, as a fresh process
   (start, open, 100 lookups, 100 cached jobs, exit). Baselines in the same run: the first,
   uncached sweep, and ``sandbox-kit sweep list`` (what any CLI call costs on this home).
   Target (issue 11): under 2 s.
2. ``Sandbox.run(..., cache=True)`` of configurations never run (every one a miss, explained
   against the 100 earlier runs of the model) against ``cache=False``, median of many calls;
   the slot is held by a sleeping job, so both only queue. Target: a lookup adds under 20 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import median, model_file, scratch

from sandbox_kit import Sandbox, Settings

GRID = {"x": list(range(10)), "y": list(range(10))}
SOURCE = """import json, os, time
cfg = json.loads(os.environ["CONFIG"])
time.sleep(cfg.get("sleep", 0))
with open(os.path.join(os.environ["SANDBOX_RESULT_DIR"], "result.json"), "w") as fh:
    json.dump({"outcome": "optimal", "objective": cfg.get("x", 0) * cfg.get("y", 1)}, fh)
"""
ROUNDS = 3
CALLS = 40
TARGET_S = 2.0
TARGET_MS = 20.0


def cli(home: Path, *args: str) -> tuple[float, str]:
    """Wall seconds and stdout of one CLI call, as from a shell."""
    env = {**os.environ, "SANDBOX_HOME": str(home)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    script = Path(sys.executable).with_name("sandbox-kit")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "sandbox_kit"]
    t0 = time.perf_counter()
    done = subprocess.run([*argv, *args], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stdout


def rerun_sweep() -> None:
    sb, home = scratch()
    sb.upload(model_file(home, "grid.py", SOURCE), "DMO")
    sb.close()
    grid = json.dumps(GRID)
    first, _ = cli(home, "sweep", "DMO", "--grid", grid, "--cache", "--wait")
    listing = median([cli(home, "sweep", "list")[0] for _ in range(ROUNDS)])
    cached = []
    for _ in range(ROUNDS):
        wall, out = cli(home, "sweep", "DMO", "--grid", grid, "--cache")
        cached.append(wall)
        info = json.loads(cli(home, "sweep", "show", out.split()[-1], "--json")[1])
        hits = sum(1 for row in info["rows"] if row["cached_from"])
        assert (info["done"], hits) == (100, 100), (info["done"], hits)
    wall = median(cached)
    print(
        f"cache: 100-scenario sweep: first run {first:.1f} s, cached re-run {wall:.2f} s "
        f"(median of {ROUNDS}), `sweep list` {listing:.2f} s"
    )
    print(
        f"cache: re-run ratio {wall / first:.3f} of the first run; "
        f"{wall:.2f} s (target < {TARGET_S:.0f} s)"
    )
    lookup_cost(home)


def lookup_cost(home: Path) -> None:
    sb = Sandbox(home=home, settings=Settings(max_running=1))
    try:
        model = sb.models()[0].id
        holder = sb.run(model, config={"sleep": 600})  # holds the one slot: runs only queue
        costs: dict[bool, list[float]] = {True: [], False: []}
        for i in range(CALLS):
            for cache in (True, False):  # interleaved, so drift affects both alike
                t0 = time.perf_counter()
                job = sb.run(model, config={"x": 1000 + i, "y": int(cache)}, cache=cache)
                costs[cache].append(time.perf_counter() - t0)
                assert job.info.cached_from is None
                assert (job.info.cache_miss_reason is not None) == cache
        with_cache, without = median(costs[True]) * 1000, median(costs[False]) * 1000
        print(
            f"cache: run() of a miss {with_cache:.1f} ms with the lookup, {without:.1f} ms "
            f"without (median of {CALLS}, 100 earlier runs to compare with)"
        )
        print(
            f"cache: a lookup adds {with_cache - without:.1f} ms, ratio "
            f"{with_cache / without:.2f} (target < {TARGET_MS:.0f} ms)"
        )
        for info in sb.jobs(status="queued", limit=1000):
            sb.cancel(info.id)
        sb.cancel(holder.id)
        holder.wait(timeout=60)
    finally:
        sb.close()


if __name__ == "__main__":
    rerun_sweep()
