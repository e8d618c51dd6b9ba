"""The shipped sample models: a bare ``python model.py`` against the same run in the sandbox.

Both runs get the same environment contract (``JOB_ID``, ``MODEL_TYPE``, ``CONFIG``,
``SANDBOX_JOB_DIR``, ``SANDBOX_RESULT_DIR``, ...) and write into a fresh result folder. The
sandbox run is timed from ``run()`` until ``wait()`` returns (polling every 10 ms, so the poll
interval does not hide the overhead); the solve time is the ``solve_time_s`` each model writes
in its ``result.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median, scratch

from sandbox_kit import JobStatus, Sandbox

EXAMPLES = Path(__file__).resolve().parents[1] / "models" / "examples"
MODELS = (("DMO", "dmo.py"), ("RMO", "rmo.py"), ("SO", "so.py"))
ROUNDS = 3


def bare(kind: str, path: Path) -> tuple[float, float]:
    """Wall time of ``python -u model.py`` and the solve time it reports."""
    job_dir = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    result_dir = job_dir / "result"
    result_dir.mkdir()
    env = {
        "JOB_ID": f"{kind}_bench",
        "MODEL_TYPE": kind,
        "CONFIG": "{}",
        "SANDBOX_JOB_DIR": str(job_dir),
        "SANDBOX_RESULT_DIR": str(result_dir),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(job_dir),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-u", str(path)],
        cwd=job_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,  # read, as the sandbox reads it, not printed
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{path.name} failed: {done.stderr.decode(errors='replace')[-500:]}")
    result = json.loads((result_dir / "result.json").read_text(encoding="utf-8"))
    shutil.rmtree(job_dir)
    return elapsed, float(result["metrics"]["solve_time_s"])


def sandboxed(sb: Sandbox, model_id: int) -> tuple[float, float]:
    """Wall time from ``run()`` to the end of ``wait()``, and the solve time recorded."""
    t0 = time.perf_counter()
    job = sb.run(model_id)
    info = job.wait(poll=0.01)
    elapsed = time.perf_counter() - t0
    if info.status is not JobStatus.SUCCESS or info.outcome != "optimal":
        raise RuntimeError(f"{job.id} ended {info.status.value} ({info.outcome}): {info.reason}")
    return elapsed, info.metrics["solve_time_s"]


def main() -> None:
    sb, _ = scratch()
    print(f"models: bare `python model.py` vs sandbox run() -> wait(), median of {ROUNDS}")
    print(
        f"{'model':<6} {'solve s':>8} {'bare s':>8} {'sandbox s':>10} {'ratio':>6} {'extra ms':>9}"
    )
    for kind, name in MODELS:
        path = EXAMPLES / name
        model_id = sb.upload(path, kind).id
        bare(kind, path), sandboxed(sb, model_id)  # warm the page cache and scipy's imports
        ours = [bare(kind, path) for _ in range(ROUNDS)]
        theirs = [sandboxed(sb, model_id) for _ in range(ROUNDS)]
        base = median([wall for wall, _ in ours])
        boxed = median([wall for wall, _ in theirs])
        solve = median([solve for _, solve in ours + theirs])
        print(
            f"{kind:<6} {solve:>8.3f} {base:>8.3f} {boxed:>10.3f} {boxed / base:>6.2f} "
            f"{(boxed - base) * 1000:>9.0f}"
        )
    sb.close()


if __name__ == "__main__":
    main()
