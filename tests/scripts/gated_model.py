# Waits until the file named by CONFIG "gate" exists (at most 60 s; no gate, no wait), reporting
# the thread count the sandbox gave it; the tests' headers declare threads and licence tokens
# (issue 15).
import json
import os
import time
from pathlib import Path

from sandbox_kit.model_api import outcome

gate = Path(json.loads(os.environ["CONFIG"]).get("gate") or ".")
print(f"started, SANDBOX_THREADS={os.environ.get('SANDBOX_THREADS')}", flush=True)
deadline = time.monotonic() + 60
while not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
threads = {name: float(os.environ[name]) for name in ("OMP_NUM_THREADS", "SANDBOX_THREADS")}
outcome("optimal", objective=1.0, metrics=threads)
