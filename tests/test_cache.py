"""Result caching (issue 11): a hit is a job with the original's bytes; each key part changed
alone misses with its reason; failed, timed-out, cancelled, error and time_limit runs are never
reused; the package fingerprint is computed once and noticed when it changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from sandbox_kit import Sandbox, Settings
from sandbox_kit import fingerprint as fp
from sandbox_kit.cache import differences
from sandbox_kit.db import InterpreterRow
from sandbox_kit.records import JobInfo
from tests.conftest import cli, script


def upload(sb: Sandbox, name: str = "outcome_writer.py", source: bytes | None = None) -> int:
    if source is None:
        return sb.upload(script(name), "DMO", name=Path(name).stem).id
    return sb.upload(source, "DMO", name=Path(name).stem, filename=name).id


def run(sb: Sandbox, model: int, **kwargs: object) -> JobInfo:
    return sb.run(model, cache=True, **kwargs).wait(timeout=60)  # type: ignore[arg-type]


def test_a_hit_is_a_job_with_the_original_result_and_log(sandbox: Sandbox) -> None:
    model = upload(sandbox)
    first = run(sandbox, model, config={"objective": 7.5})
    assert first.cached_from is None and first.status.value == "success"
    assert first.cache_miss_reason == "no earlier reusable run of DMO model outcome_writer"
    again = sandbox.run(model, config={"objective": 7.5}, cache=True)
    hit = again.info  # a success at once: nothing was queued
    assert (hit.status.value, hit.cached_from, hit.cached) == ("success", first.id, True)
    assert hit.id != first.id and hit.cache_miss_reason is None
    assert (hit.outcome, hit.objective, hit.metrics) == (first.outcome, 7.5, first.metrics)
    assert hit.duration_s == 0.0 and not (sandbox.paths.jobs / hit.id).exists()
    original = sandbox.job(first.id)
    assert again.result() == original.result()
    result = Path(hit.result_dir) / "result.json"
    assert result.read_bytes() == (Path(first.result_dir) / "result.json").read_bytes()
    assert again.raw_log() == original.raw_log() != b""
    assert [e.kind for e in again.follow()][-1] == "completed"
    assert hit.to_dict()["cached_from"] == first.id


def test_each_key_part_changed_alone_misses_with_its_reason(lite: Sandbox, tmp_path: Path) -> None:
    model = upload(lite)
    data = tmp_path / "load.csv"
    data.write_text("1\n")
    lite.add_data(data, name="load_forecast")
    base = {"config": {"scale": 1.0}, "data_source_id": "data:load_forecast"}
    assert run(lite, model, **base).status.value == "success"
    assert run(lite, model, **base).cached_from is not None

    changed_config = {**base, "config": {"scale": 1.05}}
    assert run(lite, model, **changed_config).cache_miss_reason == "config.scale: 1.0 -> 1.05"
    assert run(lite, model, **changed_config).cached_from is not None

    added_key = {**base, "config": {"scale": 1.0, "days": 2}}
    assert run(lite, model, **added_key).cache_miss_reason == "config.days: (unset) -> 2"

    newer = script("outcome_writer.py").read_bytes() + b"# v2\n"
    model_v2 = upload(lite, source=newer)
    assert run(lite, model_v2, **base).cache_miss_reason == "model outcome_writer v1 -> v2"
    assert run(lite, model_v2, **base).cached_from is not None

    data.write_text("2\n")
    lite.add_data(data, name="load_forecast")
    reason = run(lite, model, **base).cache_miss_reason
    assert reason == "data source load_forecast v1 -> v2"
    pinned = {**base, "data_source_id": "data:load_forecast@1"}
    assert run(lite, model, **pinned).cached_from is not None  # the old version still hits


def test_python_and_protocol_differences_are_named() -> None:
    before = {
        "model": {"type": "DMO", "name": "dmo", "version": 3, "sha256": "a"},
        "config": {"load_scale": 1.0, "solver": {"gap": 0.01}},
        "data": {"label": "job:DMO_1_aaaaaa", "sha256": "x"},
        "python": "3.11.2",
        "packages": "p1",
        "protocol": 1,
    }
    after = {
        **before,
        "config": {"load_scale": 1.0, "solver": {"gap": 0.02}},
        "data": {"label": "data:bids@2", "sha256": "y"},
        "python": "3.12.0",
        "packages": "p2",
        "protocol": 2,
    }
    assert differences(before, after) == [
        "config.solver.gap: 0.01 -> 0.02",
        "data source job:DMO_1_aaaaaa -> data:bids@2",
        "python 3.11.2 -> 3.12.0",  # (the packages change with it: not listed twice)
        "results protocol 1 -> 2",
    ]
    same_python = {**after, "python": "3.11.2"}
    lists = {"p1": {"scipy": "1.14.1", "numpy": "2.0"}, "p2": {"scipy": "1.15.0", "numpy": "2.0"}}
    found = differences(before, {**same_python, "protocol": 1}, lists.get)
    assert found[-1] == "scipy 1.14.1 -> 1.15.0"


@pytest.fixture
def venv_python(tmp_path: Path) -> Path:
    """A real second interpreter (a venv without pip) whose packages the test changes."""
    folder = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder / "bin" / "python"


def install_fake(python: Path, version: str) -> None:
    """Make ``fakepkg`` look installed at ``version`` (its metadata is all pip leaves)."""
    site = next((python.parent.parent / "lib").glob("python3*/site-packages"))
    for old in site.glob("fakepkg-*.dist-info"):
        for item in old.iterdir():
            item.unlink()
        old.rmdir()
    info = site / f"fakepkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")


@pytest.mark.slow
def test_installed_packages_are_part_of_the_key(
    home: Path, settings: Settings, venv_python: Path
) -> None:
    fields = {f: getattr(settings, f) for f in settings.__dataclass_fields__}
    other = {"interpreters": {"DMO": str(venv_python)}}
    sb = Sandbox(home=home, settings=Settings(**{**fields, **other}))
    try:
        model = upload(sb)
        assert run(sb, model).status.value == "success"
        install_fake(venv_python, "1.0")
        assert run(sb, model).cache_miss_reason == "fakepkg (none) -> 1.0"
        install_fake(venv_python, "1.1")
        assert run(sb, model).cache_miss_reason == "fakepkg 1.0 -> 1.1"
        assert run(sb, model).cached_from is not None
    finally:
        sb.close()


def test_the_fingerprint_is_listed_once_and_again_when_packages_change(
    lite: Sandbox, venv_python: Path
) -> None:
    first = fp.environment(lite.db, str(venv_python))
    assert first is not None and first.python_version == ".".join(map(str, sys.version_info[:3]))

    def checked() -> object:
        with lite.db.read() as s:
            return s.scalars(select(InterpreterRow.checked_at)).one()

    listed_at = checked()
    fp._known.clear()  # as in a new process: the registry remembers
    fp._recorded.clear()
    assert fp.environment(lite.db, str(venv_python)) == first
    assert checked() == listed_at  # not listed again
    install_fake(venv_python, "2.0")
    changed = fp.environment(lite.db, str(venv_python))
    assert changed is not None and changed.packages["fakepkg"] == "2.0"
    assert changed.fingerprint != first.fingerprint and checked() != listed_at
    assert fp.environment(lite.db, "/nonexistent/python3") is None


@pytest.mark.parametrize(
    ("config", "ending", "status"),
    [
        ({"exit": 1}, "failed", "failed"),
        ({"outcome": "error"}, "success", "success with outcome error"),
        ({"outcome": "time_limit"}, "success", "success with outcome time_limit"),
        ({"sleep": 30, "case": "timeout"}, "timeout", "timeout"),
        ({"sleep": 30, "case": "cancel"}, "cancelled", "cancelled"),
    ],
)
def test_only_good_successes_are_reused(
    lite: Sandbox, config: dict[str, object], ending: str, status: str
) -> None:
    model = upload(lite)
    timeout = 1.0 if config.get("case") == "timeout" else None
    job = lite.run(model, config=config, timeout=timeout, cache=True)
    if config.get("case") == "cancel":
        lite.cancel(job.id)
    first = job.wait(timeout=60)
    assert first.status.value == ending
    second = lite.run(model, config=config, timeout=timeout, cache=True)
    assert second.info.cached_from is None
    assert second.info.cache_miss_reason == (
        f"the same run {first.id} ended {status}; only a success with outcome optimal, "
        "feasible, infeasible is reused"
    )
    second.cancel()


def test_infeasible_is_reused_and_the_setting_and_no_cache_are_obeyed(
    home: Path, settings: Settings
) -> None:
    fields = {f: getattr(settings, f) for f in settings.__dataclass_fields__}
    sb = Sandbox(home=home, settings=Settings(**{**fields, "cache": {"DMO": True}}))
    try:
        model = upload(sb)
        first = sb.run(model, config={"outcome": "infeasible"}).wait(timeout=60)
        hit = sb.run(model, config={"outcome": "infeasible"}).info  # SANDBOX_CACHE_DMO=1
        assert hit.cached_from == first.id
        forced = sb.run(model, config={"outcome": "infeasible"}, cache=False).wait(timeout=60)
        assert (forced.cached_from, forced.cache_miss_reason) == (None, None)
        outside = sb.run(model, data_source_id="share/forecast.csv").wait(timeout=60)
        assert outside.cache_miss_reason is not None
        assert "outside the sandbox" in outside.cache_miss_reason
        again = sb.run(model, data_source_id="share/forecast.csv").info
        assert again.cached_from is None  # its content is unknown: never reused
        again_done = sb.job(again.id).wait(timeout=60)
        assert again_done.status.value == "success"
    finally:
        sb.close()


@pytest.mark.slow
def test_cache_clear_and_the_cli(home: Path) -> None:
    model = cli("upload", str(script("outcome_writer.py")), "--type", "DMO", home=home)
    assert model.returncode == 0, model.stderr
    first = cli("run", "DMO", "--config", '{"objective": 3}', "--cache", "--wait", home=home)
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip().splitlines()[-1]
    hit = cli("run", "DMO", "--config", '{"objective": 3}', "--cache", "--wait", home=home)
    hit_id = hit.stdout.strip().splitlines()[-1]
    assert f"reused job {first_id}" in hit.stderr
    status = json.loads(cli("status", hit_id, "--json", home=home).stdout)
    assert (status["status"], status["cached_from"]) == ("success", first_id)
    assert f"cached from {first_id}" in cli("jobs", home=home).stdout
    forced = cli("run", "DMO", "--config", '{"objective": 3}', "--no-cache", "--wait", home=home)
    forced_id = forced.stdout.strip().splitlines()[-1]
    assert json.loads(cli("status", forced_id, "--json", home=home).stdout)["cached_from"] is None
    kept = cli("cache", "clear", "--older-than", "1", home=home)
    assert kept.stdout.startswith("Cleared 0 cached result(s)")
    other = cli("cache", "clear", "--type", "SO", home=home)
    assert other.stdout.startswith("Cleared 0 cached result(s)")
    cleared = cli("cache", "clear", "--type", "DMO", home=home)
    assert cleared.returncode == 0 and cleared.stdout.startswith("Cleared 3 cached result(s)")
    recorded = json.loads(cli("audit", "--action", "cache_clear", "--json", home=home).stdout)
    assert (recorded[0]["object_id"], recorded[0]["details"]["cleared"]) == ("DMO", 3)
    after = cli("run", "DMO", "--config", '{"objective": 3}', "--cache", "--wait", home=home)
    after_id = after.stdout.strip().splitlines()[-1]
    shown = json.loads(cli("status", after_id, "--json", home=home).stdout)
    assert shown["cached_from"] is None
    assert shown["cache_miss_reason"] == "no earlier reusable run of DMO model outcome_writer"


def _other_python() -> str | None:
    """A real interpreter of another Python version on this machine, if there is one."""
    import shutil

    mine = f"python3.{sys.version_info.minor}"
    names = [f"python3.{minor}" for minor in range(9, 15) if f"python3.{minor}" != mine]
    candidates = [found for name in names if (found := shutil.which(name))]
    # Version managers keep installations side by side (<root>/<version>/bin/python3).
    beside = Path(sys.base_prefix).parent.glob("3.*/bin/python3")
    candidates += [str(p) for p in sorted(beside) if not p.is_relative_to(sys.base_prefix)]
    code = "import sys; print(sys.executable, sys.version_info.minor)"
    for found in candidates:
        done = subprocess.run([found, "-c", code], capture_output=True, text=True, check=False)
        parts = done.stdout.split()
        if done.returncode == 0 and len(parts) == 2 and parts[1] != str(sys.version_info.minor):
            return parts[0]  # the binary itself, not a shim script
    return None


@pytest.mark.slow
def test_another_python_version_misses_with_its_reason(home: Path, settings: Settings) -> None:
    other = _other_python()
    if other is None:
        pytest.skip("no second Python version on this machine")
    sb = Sandbox(home=home, settings=settings)
    model = upload(sb)
    first = run(sb, model)
    sb.close()
    fields = {f: getattr(settings, f) for f in settings.__dataclass_fields__}
    sb = Sandbox(home=home, settings=Settings(**{**fields, "interpreters": {"DMO": other}}))
    try:
        again = run(sb, model)
        assert again.status.value == "success", again.reason
        version = fp.environment(sb.db, other)
        assert version is not None
        expected = f"python {first.python_version} -> {version.python_version}"
        assert again.cache_miss_reason == expected
        assert run(sb, model).cached_from == again.id
    finally:
        sb.close()
