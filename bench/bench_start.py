"""Start latency: ``run()`` to the first line a follower sees, against bare ``subprocess``.

Target (runner issue): the difference is under 150 ms.
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
    sb, home = scratch()
    path = model_file(home, "first_line.py", SOURCE)
    model = sb.upload(path, "DMO")
    bare(str(path)), sandboxed(sb, model.id)  # warm the page cache
    base = median([bare(str(path)) for _ in range(ROUNDS)])
    ours = median([sandboxed(sb, model.id) for _ in range(ROUNDS)])
    print(
        f"start: bare subprocess {base * 1000:.0f} ms, sandbox run() {ours * 1000:.0f} ms "
        f"(median of {ROUNDS})"
    )
    print(
        f"start: ratio {ours / base:.2f}, difference {(ours - base) * 1000:.0f} ms "
        f"(target < 150 ms)"
    )


if __name__ == "__main__":
    main()
