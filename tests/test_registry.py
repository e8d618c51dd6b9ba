"""Tests for the model registry through the Sandbox facade, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox_kit import (
    ConflictError,
    Job,
    Model,
    ModelStatus,
    ModelType,
    NotFoundError,
    RunError,
    Sandbox,
    Settings,
    ValidationError,
)
from tests.conftest import script

SOURCE_A = b'"""Model A."""\nprint("a")\n'
SOURCE_B = b'"""Model B."""\nprint("b")\n'
SOURCE_C = b'"""Model C."""\nprint("c")\n'


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _model_files(home: Path) -> list[Path]:
    folder = home / "models"
    return sorted(folder.iterdir()) if folder.exists() else []


def _statuses(sandbox: Sandbox) -> dict[int, ModelStatus]:
    return {m.id: m.status for m in sandbox.models()}


def _wait_started(job: Job, timeout: float = 30) -> None:
    """Until the supervisor has started the model (and so handles SIGTERM)."""
    deadline = time.monotonic() + timeout
    while job.refresh().info.started_at is None:
        assert job.status.value in ("queued", "running"), job.info
        assert time.monotonic() < deadline, f"job {job.id} did not start"
        time.sleep(0.05)


def _assert_one_active_at_most(sandbox: Sandbox) -> None:
    for kind in ModelType:
        active = sandbox.models(model_type=kind, status="active")
        assert len(active) <= 1, active
        found = sandbox.active_model(kind)
        assert (found.id if found else None) == (active[0].id if active else None)


# --- upload ------------------------------------------------------------------------------------


def test_upload_creates_v1_active_with_all_fields(
    sandbox: Sandbox, home: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path / "src", "dmo_model.py", SOURCE_A)
    before = datetime.now(UTC)

    model = sandbox.upload(path, "DMO", description="  first try  ")

    after = datetime.now(UTC)
    assert isinstance(model, Model)
    assert model.model_type is ModelType.DMO
    assert model.name == "dmo_model"
    assert model.version == 1
    assert model.status is ModelStatus.ACTIVE
    assert model.active
    assert model.label == "dmo_model v1"
    assert model.sha256 == hashlib.sha256(SOURCE_A).hexdigest()
    assert model.size == len(SOURCE_A)
    assert model.original_filename == "dmo_model.py"
    assert model.description == "first try"
    assert model.created_at.tzinfo is not None
    assert model.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= model.created_at <= after + timedelta(seconds=1)

    stored = Path(model.path)
    assert stored.parent == (home / "models").resolve()
    assert stored.name != "dmo_model.py"
    assert stored.suffix == ".py"
    assert stored.read_bytes() == SOURCE_A
    assert _model_files(home) == [stored]
    assert path.read_bytes() == SOURCE_A  # the original is left alone

    # What was returned is what is stored.
    again = sandbox.model(model.id)
    assert again == model
    assert sandbox.active_model("DMO") == model
    assert sandbox.active_model(ModelType.SO) is None
    assert sandbox.source(model.id) == SOURCE_A.decode()


def test_upload_of_bytes_uses_filename(sandbox: Sandbox) -> None:
    model = sandbox.upload(SOURCE_A, "rmo", filename="rt.py")
    assert model.model_type is ModelType.RMO
    assert (model.name, model.original_filename, model.version) == ("rt", "rt.py", 1)
    named = sandbox.upload(SOURCE_B, "RMO", filename="rt.py", name="custom")
    assert (named.name, named.version, named.original_filename) == ("custom", 1, "rt.py")


def test_second_upload_is_v2_and_takes_over(sandbox: Sandbox, home: Path, tmp_path: Path) -> None:
    v1 = sandbox.upload(_write(tmp_path / "one", "dmo.py", SOURCE_A), "DMO")
    v2 = sandbox.upload(_write(tmp_path / "two", "dmo.py", SOURCE_B), "DMO")

    assert (v1.name, v2.name) == ("dmo", "dmo")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.id != v1.id
    assert v2.status is ModelStatus.ACTIVE
    assert sandbox.model(v1.id).status is ModelStatus.INACTIVE
    assert sandbox.active_model("DMO") == v2
    assert Path(v1.path) != Path(v2.path)
    assert Path(v1.path).read_bytes() == SOURCE_A
    assert Path(v2.path).read_bytes() == SOURCE_B
    assert len(_model_files(home)) == 2
    # Newest version first.
    assert [m.version for m in sandbox.models("DMO")] == [2, 1]


def test_identical_upload_returns_the_same_model(
    sandbox: Sandbox, home: Path, tmp_path: Path
) -> None:
    first = sandbox.upload(_write(tmp_path / "one", "dmo.py", SOURCE_A), "DMO")
    again = sandbox.upload(_write(tmp_path / "two", "dmo.py", SOURCE_A), "DMO")

    assert again.id == first.id
    assert again == first
    assert len(sandbox.models()) == 1
    assert _model_files(home) == [Path(first.path)]


def test_identical_upload_of_an_older_version_reactivates_it(sandbox: Sandbox, home: Path) -> None:
    v1 = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    v2 = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py")

    back = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")

    assert back.id == v1.id
    assert back.version == 1
    assert back.status is ModelStatus.ACTIVE
    assert sandbox.model(v2.id).status is ModelStatus.INACTIVE
    assert len(sandbox.models()) == 2
    assert len(_model_files(home)) == 2

    # Without activation, the duplicate is returned as it stands.
    same = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py", activate=False)
    assert same.id == v2.id
    assert same.status is ModelStatus.INACTIVE
    assert sandbox.active_model("DMO") == sandbox.model(v1.id)


def test_same_file_as_two_types_gives_two_models(
    sandbox: Sandbox, home: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path, "shared.py", SOURCE_A)

    dmo = sandbox.upload(path, "DMO")
    so = sandbox.upload(path, "SO")

    assert dmo.id != so.id
    assert (dmo.model_type, so.model_type) == (ModelType.DMO, ModelType.SO)
    assert (dmo.version, so.version) == (1, 1)
    assert dmo.sha256 == so.sha256
    assert sandbox.active_model("DMO") == dmo
    assert sandbox.active_model("SO") == so
    assert sandbox.model(dmo.id).status is ModelStatus.ACTIVE
    assert sandbox.active_model("RMO") is None
    assert len(_model_files(home)) == 2


def test_upload_without_activation_keeps_the_previous_active(sandbox: Sandbox) -> None:
    v1 = sandbox.upload(SOURCE_A, "SO", filename="so.py")
    v2 = sandbox.upload(SOURCE_B, "SO", filename="so.py", activate=False)

    assert v2.version == 2
    assert v2.status is ModelStatus.INACTIVE
    assert sandbox.active_model("SO") == v1


def test_first_upload_without_activation_leaves_type_without_active(sandbox: Sandbox) -> None:
    model = sandbox.upload(SOURCE_A, "SO", filename="so.py", activate=False)
    assert model.status is ModelStatus.INACTIVE
    assert sandbox.active_model("SO") is None
    with pytest.raises(RunError):
        sandbox.run("SO")


# --- activation, archive, restore ---------------------------------------------------------------


def test_at_most_one_active_per_type_through_a_lifecycle(sandbox: Sandbox) -> None:
    v1 = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    _assert_one_active_at_most(sandbox)
    v2 = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py")
    _assert_one_active_at_most(sandbox)
    other = sandbox.upload(SOURCE_C, "DMO", filename="other.py")
    _assert_one_active_at_most(sandbox)
    so = sandbox.upload(SOURCE_A, "SO", filename="so.py")
    _assert_one_active_at_most(sandbox)
    assert sandbox.active_model("DMO") == other

    steps: list[Callable[[], object]] = [
        lambda: sandbox.activate(v1.id),
        lambda: sandbox.activate(v2.id),
        lambda: sandbox.activate(v2.id),  # already active: a no-op
        lambda: sandbox.archive(v2.id),
        lambda: sandbox.restore(v2.id),
        lambda: sandbox.activate(other.id),
        lambda: sandbox.upload(SOURCE_C, "DMO", filename="dmo.py", activate=False),
        lambda: sandbox.upload(SOURCE_B, "DMO", filename="dmo.py"),
    ]
    for step in steps:
        step()
        _assert_one_active_at_most(sandbox)
        assert sandbox.active_model("SO") == so


def test_activate_an_old_version_rolls_back(sandbox: Sandbox) -> None:
    v1 = sandbox.upload(SOURCE_A, "RMO", filename="rmo.py")
    v2 = sandbox.upload(SOURCE_B, "RMO", filename="rmo.py")
    v3 = sandbox.upload(SOURCE_C, "RMO", filename="rmo.py")

    back = sandbox.activate(v1.id)

    assert back.id == v1.id
    assert back.status is ModelStatus.ACTIVE
    assert _statuses(sandbox) == {
        v1.id: ModelStatus.ACTIVE,
        v2.id: ModelStatus.INACTIVE,
        v3.id: ModelStatus.INACTIVE,
    }
    assert sandbox.active_model("RMO") == back


def test_archive_active_leaves_type_without_active(sandbox: Sandbox) -> None:
    v1 = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    v2 = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py")

    archived = sandbox.archive(v2.id)

    assert archived.status is ModelStatus.ARCHIVED
    assert not archived.active
    assert sandbox.model(v2.id).status is ModelStatus.ARCHIVED
    assert sandbox.model(v1.id).status is ModelStatus.INACTIVE  # not promoted in its place
    assert sandbox.active_model("DMO") is None
    with pytest.raises(RunError) as info:
        sandbox.run("DMO")
    assert info.value.model_type == "DMO"
    assert "DMO" in str(info.value)
    with pytest.raises(RunError):
        sandbox.run(v2.id)  # an archived model is not run by id either
    assert sandbox.jobs() == []


def test_activate_archived_model_is_a_conflict(sandbox: Sandbox) -> None:
    v1 = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    v2 = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py")
    sandbox.archive(v1.id)

    with pytest.raises(ConflictError) as info:
        sandbox.activate(v1.id)

    assert info.value.model_id == v1.id
    assert "archived" in str(info.value)
    assert sandbox.model(v1.id).status is ModelStatus.ARCHIVED
    assert sandbox.active_model("DMO") == v2


def test_restore_brings_back_as_inactive(sandbox: Sandbox) -> None:
    v1 = sandbox.upload(SOURCE_A, "SO", filename="so.py")
    sandbox.archive(v1.id)

    restored = sandbox.restore(v1.id)

    assert restored.status is ModelStatus.INACTIVE
    assert sandbox.model(v1.id).status is ModelStatus.INACTIVE
    assert sandbox.active_model("SO") is None
    assert sandbox.activate(v1.id).status is ModelStatus.ACTIVE


@pytest.mark.parametrize("verb", ["activate", "archive", "restore", "delete", "model", "source"])
def test_unknown_model_id_is_not_found(sandbox: Sandbox, verb: str) -> None:
    sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    with pytest.raises(NotFoundError) as info:
        getattr(sandbox, verb)(987_654)
    assert info.value.kind == "model"
    assert info.value.ident == 987_654
    assert "987654" in str(info.value)
    assert len(sandbox.models()) == 1


# --- delete ---------------------------------------------------------------------------------------


def test_delete_removes_row_and_file(sandbox: Sandbox, home: Path) -> None:
    v1 = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    v2 = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py")

    gone = sandbox.delete(v2.id)

    assert gone.id == v2.id
    assert not Path(v2.path).exists()
    assert [m.id for m in sandbox.models()] == [v1.id]
    assert _model_files(home) == [Path(v1.path)]
    with pytest.raises(NotFoundError):
        sandbox.model(v2.id)
    assert sandbox.active_model("DMO") is None  # the active one was deleted
    # The next upload of that name does not reuse a version number still in use.
    v3 = sandbox.upload(SOURCE_C, "DMO", filename="dmo.py")
    assert v3.version == 2


def test_delete_unknown_id_is_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError) as info:
        sandbox.delete(424_242)
    assert info.value.kind == "model"
    assert info.value.ident == 424_242


def test_delete_refused_while_job_running(sandbox: Sandbox, home: Path) -> None:
    model = sandbox.upload(script("hang.py"), "DMO")
    job = sandbox.run(model.id)
    assert job.status.value in ("queued", "running")

    with pytest.raises(ConflictError) as info:
        sandbox.delete(model.id)
    assert info.value.job_id == job.id
    assert info.value.model_id == model.id
    assert job.id in str(info.value)
    assert Path(model.path).is_file()
    assert sandbox.model(model.id) == model

    _wait_started(job)
    sandbox.cancel(job.id)
    final = job.wait(timeout=30)
    assert final.status.value == "cancelled"
    log = Path(final.log_path)
    job_dir = home / "jobs" / job.id
    assert log.is_file()
    assert job_dir.is_dir()

    sandbox.delete(model.id)

    assert not Path(model.path).exists()
    assert not log.exists()
    assert not job_dir.exists()
    assert sandbox.jobs(model=model.id) == []
    assert sandbox.jobs() == []
    assert sandbox.models() == []


def test_cancel_right_after_run_ends_cancelled(sandbox: Sandbox) -> None:
    # A user who clicks Run then Cancel at once must get "cancelled", not "lost" (which also
    # keeps the job "running" until its heartbeat goes stale, lost_after_s later).
    model = sandbox.upload(script("hang.py"), "DMO")
    job = sandbox.run(model.id)
    sandbox.cancel(job.id)
    final = job.wait(timeout=30)
    assert final.status.value == "cancelled", final.reason


def test_delete_refused_while_job_queued(home: Path, db_url: str, sandbox: Sandbox) -> None:
    # A sandbox allowed one running job: a second run waits in the queue.
    one = Sandbox(home=home, db_url=db_url, settings=Settings(max_running=1, kill_grace_s=1.0))
    try:
        model = one.upload(script("hang.py"), "SO")
        running = one.run(model.id)
        queued = one.run(model.id)
        assert queued.status.value == "queued"

        _wait_started(running)
        one.cancel(running.id)
        running.wait(timeout=30)
        # Cancelling frees the slot, so the queued one starts now: it still blocks deletion.
        with pytest.raises(ConflictError) as info:
            one.delete(model.id)
        assert info.value.job_id == queued.id

        if queued.refresh().status.value == "running":
            _wait_started(queued)
        one.cancel(queued.id)
        queued.wait(timeout=30)
        one.delete(model.id)
        assert one.jobs(model=model.id) == []
        assert one.models() == []
    finally:
        one.close()


def test_delete_refused_while_only_queued(home: Path, db_url: str, sandbox: Sandbox) -> None:
    # max_running=0 keeps a job queued for as long as only this sandbox dispatches.
    stalled = Sandbox(home=home, db_url=db_url, settings=Settings(max_running=0))
    try:
        model = stalled.upload(SOURCE_A, "RMO", filename="rmo.py")
        job = stalled.run(model.id)
        assert job.status.value == "queued"
        with pytest.raises(ConflictError) as info:
            stalled.delete(model.id)
        assert info.value.job_id == job.id

        stalled.cancel(job.id)
        assert stalled.job_info(job.id).status.value == "cancelled"
        stalled.delete(model.id)
        assert stalled.jobs() == []
        assert not (home / "jobs" / job.id).exists()
    finally:
        stalled.close()


# --- rejected uploads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "max_bytes", "reason"),
    [
        ("broken.py", b"def f(:\n    pass\n", None, "line 1"),
        ("model.txt", b"print('hi')\n", None, ".py"),
        ("model", b"print('hi')\n", None, ".py"),
        ("big.py", b"x = 1\n" * 20, 50, "limit"),
        ("nul.py", b"x = 1\n\x00\n", None, "NUL"),
        ("empty.py", b"   \n", None, "empty"),
        ("latin.py", b"s = '\xe9'\n", None, "UTF-8"),
    ],
)
def test_rejected_upload_leaves_nothing(
    home: Path,
    db_url: str,
    sandbox: Sandbox,
    tmp_path: Path,
    filename: str,
    data: bytes,
    max_bytes: int | None,
    reason: str,
) -> None:
    existing = sandbox.upload(SOURCE_A, "DMO", filename="keep.py")
    files_before = _model_files(home)
    settings = Settings() if max_bytes is None else Settings(max_upload_bytes=max_bytes)
    strict = Sandbox(home=home, db_url=db_url, settings=settings)
    path = _write(tmp_path / "up", filename, data)
    try:
        with pytest.raises(ValidationError) as from_path:
            strict.upload(path, "DMO")
        with pytest.raises(ValidationError) as from_bytes:
            strict.upload(data, "DMO", filename=filename)
    finally:
        strict.close()

    assert reason in str(from_path.value)
    assert reason in str(from_bytes.value)
    assert _model_files(home) == files_before
    assert sandbox.models() == [existing]
    assert sandbox.active_model("DMO") == existing


@pytest.mark.parametrize("bad", ["XYZ", "", "dmo2"])
def test_unknown_model_type_is_rejected(sandbox: Sandbox, home: Path, bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        sandbox.upload(SOURCE_A, bad, filename="m.py")
    assert "DMO" in str(info.value)
    assert sandbox.models() == []
    assert _model_files(home) == []


def test_missing_file_is_rejected(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        sandbox.upload(tmp_path / "nope.py", "DMO")
    assert "no such file" in str(info.value)
    assert sandbox.models() == []


# --- listing --------------------------------------------------------------------------------------


def test_models_filters(sandbox: Sandbox) -> None:
    d1 = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    d2 = sandbox.upload(SOURCE_B, "DMO", filename="dmo.py")
    d3 = sandbox.upload(SOURCE_C, "DMO", filename="dmo.py", activate=False)
    s1 = sandbox.upload(SOURCE_A, "SO", filename="so.py")
    r1 = sandbox.upload(SOURCE_B, "RMO", filename="rmo.py", activate=False)
    sandbox.archive(d1.id)

    def ids(**kwargs: str | ModelType | ModelStatus) -> list[int]:
        return [m.id for m in sandbox.models(**kwargs)]

    assert sorted(ids()) == sorted([d1.id, d2.id, d3.id, s1.id, r1.id])
    assert ids(model_type="DMO") == [d3.id, d2.id, d1.id]
    assert ids(model_type="dmo") == [d3.id, d2.id, d1.id]
    assert ids(model_type=ModelType.SO) == [s1.id]
    assert sorted(ids(status="active")) == sorted([d2.id, s1.id])
    assert sorted(ids(status="INACTIVE")) == sorted([d3.id, r1.id])
    assert ids(status=ModelStatus.ARCHIVED) == [d1.id]
    assert ids(model_type="DMO", status="inactive") == [d3.id]
    assert ids(model_type="RMO", status="active") == []
    assert ids(model_type="SO", status="archived") == []


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"model_type": "XYZ"}, "model type"), ({"status": "deleted"}, "model status")],
)
def test_models_rejects_unknown_filters(
    sandbox: Sandbox, kwargs: dict[str, str], word: str
) -> None:
    with pytest.raises(ValidationError) as info:
        sandbox.models(**kwargs)
    assert word in str(info.value)


def test_returned_models_are_frozen(sandbox: Sandbox) -> None:
    model = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py")
    for attr, value in (("name", "other"), ("status", ModelStatus.ARCHIVED), ("version", 9)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(model, attr, value)
    assert sandbox.model(model.id) == model
    for listed in sandbox.models():
        with pytest.raises(dataclasses.FrozenInstanceError):
            listed.name = "x"  # type: ignore[misc]


def test_to_dict_shape(sandbox: Sandbox) -> None:
    model = sandbox.upload(SOURCE_A, "DMO", filename="dmo.py", description="d")
    data = model.to_dict()
    assert data["id"] == model.id
    assert data["model_type"] == "DMO"
    assert data["status"] == "active"
    assert data["active"] is True
    assert datetime.fromisoformat(data["created_at"]) == model.created_at
    assert "path" not in data


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_uploads_get_distinct_versions(
    home: Path, db_url: str, sandbox: Sandbox
) -> None:
    threads_n, per_thread = 4, 5
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    results: list[Model] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        sb = Sandbox(home=home, db_url=db_url, settings=Settings())
        try:
            barrier.wait(timeout=30)
            for k in range(per_thread):
                data = f'"""Thread {index}, upload {k}."""\nVALUE = {index * 100 + k}\n'.encode()
                model = sb.upload(data, "DMO", filename="same.py")
                with lock:
                    results.append(model)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            sb.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    total = threads_n * per_thread
    assert sorted(m.version for m in results) == list(range(1, total + 1))
    stored = sandbox.models("DMO")
    assert sorted(m.version for m in stored) == list(range(1, total + 1))
    assert len({m.id for m in stored}) == total
    assert len({m.sha256 for m in stored}) == total
    assert {m.name for m in stored} == {"same"}
    assert len([m for m in stored if m.active]) == 1
    assert len(_model_files(home)) == total
    assert {Path(m.path) for m in stored} == set(_model_files(home))
