"""Throughput: a model printing 1 000 000 short lines, end to end, against ``python -u > file``.

Target (runner issue): ratio <= 1.5, and the log holds all 1 000 000 lines.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import model_file, scratch

LINES = 1_000_000
SOURCE = f"for i in range({LINES}):\n    print('line', i)\n"


def main() -> None:
    sb, home = scratch()
    path = model_file(home, "flood.py", SOURCE)
    model = sb.upload(path, "DMO")
    t0 = time.perf_counter()
    with open(home / "baseline.out", "wb") as out:
        subprocess.run([sys.executable, "-u", str(path)], stdout=out, check=True)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    job = sb.run(model.id)
    info = job.wait(poll=0.02)
    ours = time.perf_counter() - t0
    count = len(job.logs())
    print(
        f"throughput: python -u > file {base:.2f} s, sandbox {ours:.2f} s, status "
        f"{info.status.value}, lines in log {count:,}"
    )
    print(f"throughput: ratio {ours / base:.2f} (target <= 1.5); all lines kept: {count == LINES}")


if __name__ == "__main__":
    main()
