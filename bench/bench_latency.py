"""Line latency: p95 delay between a model writing a line and a follower in another process
seeing it, at 20 000 lines/s. Baseline: the same follower reading a pipe from the model.

Target (runner issue): p95 <= 100 ms.
"""

from __future__ import annotations

import json
import subprocess
import sys

from common import model_file, scratch

RATE, SECONDS = 20_000, 5
SOURCE = f"""
import time
batch, rate, end = 20, {RATE}, time.time() + {SECONDS}
i = 0
while time.time() < end:
    t = time.time()
    print("\\n".join(f"{{time.time():.6f}} {{i + k}}" for k in range(batch)), flush=True)
    i += batch
    time.sleep(max(0.0, batch / rate - (time.time() - t)))
"""
FOLLOWER = """
import json, sys, time
from sandbox_kit import Sandbox
sb = Sandbox(home=sys.argv[1])
print("ready", flush=True)
job_id = sys.stdin.readline().strip()  # the job starts only once this follower is ready
delays = []
for event in sb.job(job_id).follow():
    if event.line is not None:
        delays.append(time.time() - float(event.line.text.split()[0]))
print(json.dumps(delays))
"""
PIPE_READER = """
import json, subprocess, sys, time
proc = subprocess.Popen([sys.executable, "-u", sys.argv[1]], stdout=subprocess.PIPE)
delays = [time.time() - float(line.split()[0]) for line in proc.stdout]
print(json.dumps(delays))
"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    sb, home = scratch()
    path = model_file(home, "paced.py", SOURCE)
    model = sb.upload(path, "DMO")
    base = json.loads(
        subprocess.run(
            [sys.executable, "-c", PIPE_READER, str(path)], capture_output=True, check=True
        ).stdout
    )
    follower = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None and follower.stdin is not None
    follower.stdout.readline()
    job = sb.run(model.id)
    follower.stdin.write(job.id + "\n")
    follower.stdin.close()
    ours = json.loads(follower.stdout.read())
    follower.wait()
    print(
        f"latency: {len(ours):,} lines at ~{RATE:,}/s; pipe reader p95 {p95(base) * 1000:.1f} ms, "
        f"follower in another process p95 {p95(ours) * 1000:.1f} ms"
    )
    print(
        f"latency: ratio {p95(ours) / max(p95(base), 1e-4):.1f}x the bare pipe; "
        f"p95 {p95(ours) * 1000:.1f} ms (target <= 100 ms)"
    )


if __name__ == "__main__":
    main()
