"""Start latency: ``run()`` to the first line a follower sees, against bare ``subprocess``;
and the same with isolation on (the default) against ``SANDBOX_ISOLATION=off``.

Targets: the difference to bare is under 150 ms (runner issue); isolation adds at most 50 ms
(issue 8). All rounds run interleaved in one process, median of 10.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import median, model_file, scratch

SOURCE = "print('first line', flush=True)\n"
ROUNDS = 10


def bare(path: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-u", path], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.wait()
    proc.stdout.close()
    return elapsed


def sandboxed(sb: object, model_id: int) -> float:
    t0 = time.perf_counter()
    job = sb.run(model_id)  # type: ignore[attr-defined]
    for event in job.follow():
        if event.kind == "log":
            elapsed = time.perf_counter() - t0
            break
    job.wait()
    return elapsed


def main() -> None:
    jailed, home = scratch()
    plain, _ = scratch(isolation="off")
    path = model_file(home, "first_line.py", SOURCE)
    on, off = jailed.upload(path, "DMO"), plain.upload(path, "DMO")
    bare(str(path)), sandboxed(jailed, on.id), sandboxed(plain, off.id)  # warm the caches
    rounds: dict[str, list[float]] = {"bare": [], "isolated": [], "off": []}
    for _ in range(ROUNDS):
        rounds["bare"].append(bare(str(path)))
        rounds["isolated"].append(sandboxed(jailed, on.id))
        rounds["off"].append(sandboxed(plain, off.id))
    base, ours, unjailed = (median(rounds[k]) for k in ("bare", "isolated", "off"))
    level = jailed.jobs(limit=1)[0].isolation
    print(
        f"start: bare subprocess {base * 1000:.0f} ms, sandbox run() {ours * 1000:.0f} ms "
        f"(isolation {level}), with isolation off {unjailed * 1000:.0f} ms (median of {ROUNDS})"
    )
    print(
        f"start: ratio {ours / base:.2f}, difference {(ours - base) * 1000:.0f} ms "
        f"(target < 150 ms)"
    )
    print(
        f"start: isolation ratio {ours / unjailed:.2f}, adds {(ours - unjailed) * 1000:.0f} ms "
        f"(target <= 50 ms)"
    )


if __name__ == "__main__":
    main()
