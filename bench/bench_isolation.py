"""Start overhead of the jail: ``python -c pass`` bare, under bubblewrap, under unshare + setpriv.

Target (isolation issue 8): isolation adds at most 50 ms to a job's start. The three are measured
in the same rounds (interleaved, median of 10 after a warm-up), with the options the supervisor
uses (:func:`sandbox_kit.jail.wrap`). As root the fallback runs the system Python: without a
filesystem view the job uid must reach the interpreter itself, and a venv under ``/root`` (mode
0700) is out of its reach. ``probe()`` (a trial run, once per process) is reported apart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median

from sandbox_kit import jail

ROUNDS = 10
TARGET_MS = 50


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env={"PATH": "/usr/bin:/bin"}, check=True)
    return time.perf_counter() - t0


def main() -> None:
    t0 = time.perf_counter()
    support = jail.probe()
    probe_s = time.perf_counter() - t0
    if support.tool is None:
        print(f"isolation: no jail on this machine ({support.reason})")
        return
    root = os.geteuid() == 0
    uid = jail.slot_uid(999) if root else None
    job = Path(tempfile.mkdtemp(prefix="sandbox-bench-jail-"))
    try:
        job.chmod(0o755)
        model = job / "model.py"
        model.write_text("pass\n")
        model.chmod(0o644)
        jail.prepare_dirs(job, job, uid)
        job.chmod(0o755)  # the fallback's job uid reaches it without a filesystem view
        fallback_py = "/usr/bin/python3" if root and os.path.exists("/usr/bin/python3") else None
        fallback_py = fallback_py or sys.executable

        def wrapped(py: str, tool: str) -> list[str]:
            return jail.wrap(
                [py, "-c", "pass"],
                job_dir=job,
                result_dir=job,
                model_path=model,
                interpreter=py,
                uid=uid,
                tool=tool,
            )

        cmds = {
            "bare": [sys.executable, "-c", "pass"],
            "bwrap": wrapped(sys.executable, "bwrap") if support.bwrap else None,
            "bare-fallback": [fallback_py, "-c", "pass"],
            "unshare": wrapped(fallback_py, "unshare") if support.unshare else None,
        }
        usable = {name: cmd for name, cmd in cmds.items() if cmd}
        runs: dict[str, list[float]] = {name: [] for name in usable}
        for cmd in usable.values():  # warm the page cache
            timed(cmd, job)
        for _ in range(ROUNDS):
            for name, cmd in usable.items():
                runs[name].append(timed(cmd, job))
    finally:
        shutil.rmtree(job)
    ms = {name: median(values) * 1000 for name, values in runs.items()}
    print(f"isolation: bare `python -c pass` {ms['bare']:.0f} ms (median of {ROUNDS})")
    for tool, base in (("bwrap", "bare"), ("unshare", "bare-fallback")):
        if tool in ms:
            extra = ms[tool] - ms[base]
            print(
                f"isolation: {tool:8s} {ms[tool]:.0f} ms against {ms[base]:.0f} ms bare: "
                f"ratio {ms[tool] / ms[base]:.2f}, +{extra:.0f} ms (target < {TARGET_MS} ms)"
            )
    print(
        f"isolation: probe() {probe_s * 1000:.0f} ms once per process "
        f"(level {support.level}, tool {support.tool})"
    )


if __name__ == "__main__":
    main()
