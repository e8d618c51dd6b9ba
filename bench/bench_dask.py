"""Scale-out (issue 12): 40 jobs of 0.5 s on a Dask cluster of two workers x 2 slots, against
the local executor with 4 slots, in the same run; and the latency of following a remote
job's log (a line's write on the worker to its arrival in ``Job.follow()`` here), p95.

Both executors use the same SQLite registry file layout; the cluster is a ``LocalCluster``
of two worker processes on this machine (no shared folders are used: logs come back through
the registry, results through the store).

Target (issue 12): remote-follow p95 <= 1 s, no line lost.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from common import model_file

from sandbox_kit import Sandbox, Settings

JOBS, SECONDS = 40, 0.5
SLEEPER = f"import time\nprint('start', flush=True)\ntime.sleep({SECONDS})\nprint('done')\n"
PACED = """
import time
for i in range(400):  # 20 s at 20 lines/s
    print(f"{time.time():.6f} {i}", flush=True)
    time.sleep(0.05)
"""


def batch(sb: Sandbox, model_id: int) -> float:
    begun = time.perf_counter()
    jobs = [sb.run(model_id) for _ in range(JOBS)]
    for job in jobs:
        info = job.wait(timeout=600, poll=0.05)
        assert info.status.value == "success", (info.id, info.reason)
    return time.perf_counter() - begun


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    from distributed import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="sandbox-bench-dask-"))
    common = {"max_running": 4, "heartbeat_s": 0.5}

    local_home = root / "local"
    local_home.mkdir()
    local = Sandbox(home=local_home, settings=Settings(**common))  # type: ignore[arg-type]
    local_model = local.upload(model_file(local_home, "sleeper.py", SLEEPER), "DMO").id

    dask_home = root / "dask"
    dask_home.mkdir()
    db_url, store = f"sqlite:///{dask_home / 'sandbox.db'}", str(dask_home / "store")
    cluster = LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=2,
        resources={"slots": 2},
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        env={"SANDBOX_DB_URL": db_url, "SANDBOX_STORE": store, "SANDBOX_HEARTBEAT_S": "0.5"},
        local_directory=str(root / "workers"),
        silence_logs=logging.ERROR,
    )
    settings = Settings(
        executor="dask", dask_address=cluster.scheduler_address, store=store, **common
    )  # type: ignore[arg-type]
    remote = Sandbox(home=dask_home, db_url=db_url, settings=settings)
    remote_model = remote.upload(model_file(dask_home, "sleeper.py", SLEEPER), "DMO").id
    try:
        local_s = batch(local, local_model)
        remote_s = batch(remote, remote_model)
        print(
            f"dask: {JOBS} jobs of {SECONDS} s; local executor (4 slots) {local_s:.1f} s, "
            f"Dask (2 workers x 2 slots) {remote_s:.1f} s"
        )
        print(f"dask: throughput ratio {local_s / remote_s:.2f} (Dask jobs/s over local jobs/s)")

        paced = remote.upload(model_file(dask_home, "paced.py", PACED), "DMO").id
        job = remote.run(paced)
        delays, count = [], 0
        for event in job.follow():
            if event.line is not None:
                delays.append(time.time() - float(event.line.text.split()[0]))
                count += 1
        print(
            f"dask: remote follow of {count} lines (of 400): p50 "
            f"{sorted(delays)[len(delays) // 2] * 1000:.0f} ms, p95 {p95(delays) * 1000:.0f} ms "
            "(target <= 1000 ms)"
        )
    finally:
        remote.close()
        local.close()
        cluster.close()


if __name__ == "__main__":
    main()
