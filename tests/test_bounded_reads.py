"""Reading a job's log and result folder in bounded pieces (issue 9): real jobs, real files.

Memory itself is measured in ``bench/bench_bounded.py``; these tests pin the behaviour the
bound relies on: generators, chunked reads that lose nothing, early stops.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from sandbox_kit import Job, JobStatus, Sandbox, Settings
from sandbox_kit.errors import ValidationError
from sandbox_kit.logs import LogWriter, iter_raw, raw_bytes
from tests.conftest import _stop_all, cli, script

METRICS_MODEL = """\
import sys
write = sys.stdout.write
for i in range(100_000):
    write(f"::metric gap={1 / (i + 1)} nodes={i}\\n")
"""

BIG_RESULT_MODEL = """\
import json, os
with open(os.path.join(os.environ["SANDBOX_RESULT_DIR"], "result.json"), "w") as fh:
    json.dump({"outcome": "optimal", "message": "x" * 4096}, fh)
"""


def flood(sb: Sandbox, lines: int) -> Job:
    """A finished job whose log holds ``lines`` lines (a few MB: several read chunks)."""
    job = sb.run(sb.upload(script("flood.py"), "DMO").id, config={"lines": lines})
    assert job.wait(timeout=60).status is JobStatus.SUCCESS
    return job


def elsewhere(
    sb: Sandbox, job: Job, *, log_path: Path | None = None, result_dir: Path | None = None
) -> Job:
    """The same job with its log or result folder pointed at a test's own files."""
    info = dataclasses.replace(
        job.info,
        log_path=str(log_path or job.info.log_path),
        result_dir=str(result_dir or job.info.result_dir),
    )
    return Job(sb, info)


# -- Job.iter_logs ---------------------------------------------------------------------------


@pytest.mark.slow
def test_iter_logs_is_a_generator_that_yields_what_logs_returns(lite: Sandbox) -> None:
    job = flood(lite, 150_000)  # ~3.6 MB of records: four chunks
    assert Path(job.info.log_path).stat().st_size > 3 << 20
    lines = job.iter_logs()
    assert inspect.isgenerator(lines)
    assert list(lines) == job.logs()
    assert [line.seq for line in job.iter_logs()] == list(range(1, 150_001))
    tail = list(job.iter_logs(since=149_990))
    assert [line.text for line in tail] == [f"line {i}" for i in range(149_990, 150_000)]


def test_follow_from_deep_in_a_long_log_misses_nothing(lite: Sandbox) -> None:
    job = flood(lite, 150_000)
    # The first chunks hold only lines at or below `since`: they yield nothing, and must not
    # be taken for the end of the log.
    events = list(job.follow(since=149_990))
    assert [e.line.seq for e in events if e.line is not None] == list(range(149_991, 150_001))
    assert events[-1].kind == "completed"


def test_iter_logs_of_a_missing_log_is_empty(lite: Sandbox, tmp_path: Path) -> None:
    job = flood(lite, 1)
    assert list(elsewhere(lite, job, log_path=tmp_path / "none.log").iter_logs()) == []


def test_iter_logs_keeps_long_lines_and_progress_across_chunks(
    lite: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "job.log"
    writer = LogWriter(path, cap_bytes=1 << 30)
    for i in range(40):
        writer.feed(b"o", b"x" * 200_000 + b"\n", i)  # each line spans several records
        writer.feed(b"e", b"10%\r50%\r", i)
        writer.feed(b"e", b"100%\n", i)
    writer.close(99)
    job = elsewhere(lite, flood(lite, 1), log_path=path)
    streamed = list(job.iter_logs())
    assert streamed == job.logs()
    assert [line.text for line in streamed if line.stream == "stderr"] == ["100%"] * 40


@pytest.mark.slow
def test_metric_points_from_100k_metric_lines(lite: Sandbox, tmp_path: Path) -> None:
    model = tmp_path / "metrics.py"
    model.write_text(METRICS_MODEL)
    job = lite.run(lite.upload(model, "DMO").id)
    assert job.wait(timeout=60).status is JobStatus.SUCCESS
    points = job.metric_points()
    assert len(points) == 200_000
    assert (points[-1].name, points[-1].value) == ("nodes", 99_999.0)


@pytest.mark.slow
def test_cli_logs_streams_every_line(lite: Sandbox, home: Path) -> None:
    job = flood(lite, 120_000)
    out = cli("logs", job.id, home=home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"line {i}" for i in range(120_000)]
    since = cli("logs", job.id, "--since", "119998", "--json", home=home)
    assert [json.loads(x)["seq"] for x in since.stdout.splitlines()] == [119_999, 120_000]


# -- raw bytes -------------------------------------------------------------------------------


def test_iter_raw_gives_back_every_byte_in_pieces(lite: Sandbox) -> None:
    job = flood(lite, 150_000)
    pieces = list(iter_raw(job.info.log_path, 1 << 20))
    assert len(pieces) > 1
    assert b"".join(pieces) == raw_bytes(job.info.log_path) == job.raw_log()
    assert job.raw_log() == b"".join(b"line %d\n" % i for i in range(150_000))


def test_iter_raw_keeps_invalid_utf8_and_carriage_returns(lite: Sandbox) -> None:
    jobs = [lite.run(lite.upload(script(n), "DMO").id) for n in ("invalid_utf8.py", "progress.py")]
    for job in jobs:
        job.wait(timeout=60)
        whole = Path(job.info.log_path).read_bytes()
        assert whole  # the model wrote something
        assert b"".join(iter_raw(job.info.log_path, 1)) == job.raw_log()
    assert b"\r" in jobs[1].raw_log()


def test_iter_raw_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert list(iter_raw(tmp_path / "none.log")) == []


# -- result folder ---------------------------------------------------------------------------


def test_job_result_is_read_under_the_settings_limit(home: Path, tmp_path: Path) -> None:
    sb = Sandbox(home=home, settings=Settings(result_max_bytes=1024))
    try:
        model = tmp_path / "big_result.py"
        model.write_text(BIG_RESULT_MODEL)
        job = sb.run(sb.upload(model, "DMO").id)
        assert job.wait(timeout=60).status is JobStatus.SUCCESS  # the process status stands
        with pytest.raises(ValidationError, match=r"result.json is 4.0 KB, over the 1.0 KB limit"):
            job.result()
    finally:
        _stop_all(sb)


def test_files_with_a_limit_stop_early_in_sorted_order(lite: Sandbox, tmp_path: Path) -> None:
    root = tmp_path / "result"
    for name in ("b.csv", "a/x.csv", "a/y/z.csv", "a.csv", "c/d.txt", "result.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "link.csv").symlink_to(root / "b.csv")
    job = elsewhere(lite, flood(lite, 1), result_dir=root)
    every = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    assert job.files() == every
    assert job.files(limit=3) == every[:3] == [root / "a/x.csv", root / "a/y/z.csv", root / "a.csv"]
    assert job.files(limit=0) == []


def test_files_survive_folders_nested_past_the_recursion_limit(
    lite: Sandbox, tmp_path: Path
) -> None:
    root = deep = tmp_path / "r"
    root.mkdir()
    for _ in range(1200):  # one by one: mkdir(parents=True) itself recurses
        deep = deep / "d"
        deep.mkdir()
    (deep / "bottom.txt").write_text("here")
    try:
        job = elsewhere(lite, flood(lite, 1), result_dir=root)
        assert job.files() == [deep / "bottom.txt"]
    finally:  # bottom up, by hand: pytest's shutil.rmtree of old tmp folders recurses too
        (deep / "bottom.txt").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent
