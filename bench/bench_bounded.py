"""Bounded reads of what a model writes (issue 9): peak memory of the readers.

Each figure is the peak RSS of a fresh process, against a baseline process measured in the
same run that does everything but the read (same imports, same sandbox, same job handle):

- a 300 MB ``result.json`` through ``summarize()`` (the supervisor's path at a job's end),
  against a bare python process;
- a log of 100,000 ``::metric`` lines parsed through ``Job.iter_logs()`` (a kernel);
- a ~1 GiB log through ``Job.iter_logs()``, ``sandbox-kit logs JOB`` and "Download log".

Target: each reader within 1.25x of its baseline (constant memory, whatever the size). Two
reference lines (no target) put figures in context: the ``summarize()`` process against a bare
python (the difference is imports), and the metric log read as the whole ``Job.logs()`` list.
The files are made in a temporary folder and deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULT_MB = 300
METRIC_LINES = 100_000
LOG_BYTES = 1 << 30
TARGET = 1.25


# -- the measured processes (``bench_bounded.py --child MODE WORK HOME JOB_ID``) ----------------


def child(mode: str, work: bool, home: str, job_id: str) -> None:
    """Do one measured thing (or, without ``work``, everything but it); print peak RSS."""
    t0 = time.perf_counter()
    detail = ""
    if mode == "summarize":  # what the supervisor imports and does
        from sandbox_kit.results import summarize

        if work:
            detail = str(summarize(Path(home), max_bytes=1 << 20).error)
    elif mode == "cli":
        from sandbox_kit.cli import main as cli

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the process ends right after
        cli(["--home", home, "logs" if work else "status", job_id])
    else:  # a kernel: sandbox open, widgets imported, a job handle
        from sandbox_kit import Sandbox
        from sandbox_kit.telemetry import parse_metric_line
        from sandbox_kit.widgets import LogPanel

        job = Sandbox(home=home).job(job_id)
        if work and mode == "metrics":
            detail = f"{sum(len(parse_metric_line(line.text)) for line in job.iter_logs())} points"
        elif work and mode == "metrics-list":  # the whole list, as Job.logs() returns it
            detail = f"{sum(len(parse_metric_line(line.text)) for line in job.logs())} points"
        elif work and mode == "iter":
            detail = f"{sum(1 for _ in job.iter_logs()):,} lines"
        elif work and mode == "download":
            panel = LogPanel(job._sandbox, start=False)
            panel.attach(job_id)
            panel.prepare_download()
            detail = "link" if "data:" in panel.download.value else "command shown"
    print(f"{peak_kb()} {time.perf_counter() - t0:.2f} {detail}", file=sys.__stdout__)


def peak_kb() -> int:
    """This process's peak RSS. Not ``ru_maxrss``: on Linux that keeps the parent's peak
    across fork and exec, so every child would report at least the bench's own size."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def measure(mode: str, work: bool, home: Path, job_id: str) -> tuple[float, float, str]:
    """Peak RSS in MB, seconds and a detail, from a fresh process."""
    args = [sys.executable, __file__, "--child", mode, "1" if work else "0", str(home), job_id]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split(" ", 2)
    return int(out[0]) / 1024, float(out[1]), out[2].strip()


def bare_python() -> float:
    """Peak RSS of a python process that only reads its own peak."""
    code = "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


# -- the files -----------------------------------------------------------------------------


def big_result(folder: Path) -> None:
    """A valid JSON object of RESULT_MB megabytes."""
    folder.chmod(0o755)  # a finished job's result folder is frozen read-only
    block = b"x" * (1 << 20)
    with open(folder / "result.json", "wb") as fh:
        fh.write(b'{"outcome": "optimal", "pad": "')
        for _ in range(RESULT_MB):
            fh.write(block)
        fh.write(b'"}')


def metric_log(path: Path) -> None:
    from sandbox_kit.logs import LogWriter

    writer = LogWriter(path, cap_bytes=LOG_BYTES)
    for start in range(0, METRIC_LINES, 1000):
        lines = (f"::metric gap={1 / (i + 1):.6f} nodes={i}\n" for i in range(start, start + 1000))
        writer.feed(b"o", "".join(lines).encode(), 1_764_331_200_000 + start)
    writer.close(1_764_331_300_000)


def huge_log(path: Path) -> None:
    """About LOG_BYTES of records: 1,000-byte lines, with a progress bar now and then."""
    from sandbox_kit.logs import LogWriter

    writer = LogWriter(path, cap_bytes=2 * LOG_BYTES)
    line = b"objective 1234.5678 " + b"." * 978 + b"\n"
    block = line * 1024
    ts = 1_764_331_200_000
    while writer.written < LOG_BYTES - len(block):
        writer.feed(b"o", block, ts)
        writer.feed(b"e", b"progress 50%\rprogress 100%\n", ts)
        ts += 1
    writer.close(ts)


# -- the run ---------------------------------------------------------------------------------


def report(name: str, base: float, got: tuple[float, float, str], *, target: bool = True) -> None:
    """One line; ``target=False`` for a reference figure that the target does not apply to."""
    peak, seconds, detail = got
    ratio = peak / base
    mark = f"target <= {TARGET}, {'ok' if ratio <= TARGET else 'OVER'}" if target else "reference"
    print(
        f"bounded: {name:<38} {peak:6.1f} MB vs baseline {base:5.1f} MB  "
        f"ratio {ratio:.2f} ({mark})  {seconds:.1f} s  {detail}"
    )


def main() -> None:
    from common import model_file, scratch  # here: a measured child must not import Sandbox

    sb, home = scratch()
    try:
        model = sb.upload(model_file(home, "quiet.py", "print('ok')\n"), "DMO")
        jobs = [sb.run(model.id) for _ in range(3)]
        for job in jobs:
            job.wait(timeout=60)
        result_job, metric_job, log_job = (job.refresh().info for job in jobs)
        big_result(Path(result_job.result_dir))
        metric_log(Path(metric_job.log_path))
        t0 = time.perf_counter()
        huge_log(Path(log_job.log_path))
        size = Path(log_job.log_path).stat().st_size
        print(f"bounded: wrote a {size / 2**30:.2f} GiB log in {time.perf_counter() - t0:.1f} s")

        bare = bare_python()
        print(f"bounded: a bare python process: {bare:.1f} MB")
        folder = result_job.result_dir
        got = measure("summarize", True, folder, "")
        report(f"summarize(), {RESULT_MB} MB result.json", measure(
            "summarize", False, folder, "")[0], got)  # fmt: skip
        report("  same, against a bare python process", bare, got, target=False)
        kernel = measure("kernel", False, home, metric_job.id)[0]
        report(f"iter_logs, {METRIC_LINES:,} ::metric lines", kernel, measure(
            "metrics", True, home, metric_job.id))  # fmt: skip
        report("  same through Job.logs() (whole list)", kernel, measure(
            "metrics-list", True, home, metric_job.id), target=False)  # fmt: skip
        report("iter_logs, 1 GiB log", kernel, measure("iter", True, home, log_job.id))
        report("Download log, 1 GiB log", kernel, measure("download", True, home, log_job.id))
        cli_base = measure("cli", False, home, log_job.id)[0]
        report("sandbox-kit logs, 1 GiB log", cli_base, measure("cli", True, home, log_job.id))
    finally:
        sb.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        mode, work, home, job_id = sys.argv[2:6]
        child(mode, work == "1", home, job_id)
    else:
        main()
