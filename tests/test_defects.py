"""The smaller defects of issue 9, one test each: follow() of a job cancelled while queued,
delete of read-only result folders, a database newer than the code, an unreachable database."""

from __future__ import annotations

import json
import os
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from sandbox_kit import Sandbox, SchemaVersionError, Settings
from sandbox_kit.db import HEAD_REVISION, Database, public_url
from tests.conftest import ROOT, cli, script

NOBODY = 65534
NESTED_RESULTS = """
import os
out = os.environ["SANDBOX_RESULT_DIR"]
os.makedirs(os.path.join(out, "tables", "deep"))
for name in ("result.json", "tables/a.csv", "tables/deep/b.csv"):
    with open(os.path.join(out, name), "w") as fh:
        fh.write("{}" if name.endswith(".json") else "x\\n1\\n")
print("wrote results")
"""

#: A schema revision this sandbox_kit does not know yet.
NEWER = f"{int(HEAD_REVISION) + 1:04d}"


# -- follow() of a job that never ran ---------------------------------------------------------


def test_follow_of_a_job_cancelled_while_queued_yields_only_cancelled(
    home: Path, db_url: str
) -> None:
    sb = Sandbox(home=home, db_url=db_url, settings=Settings(max_running=1, kill_grace_s=1.0))
    try:
        model = sb.upload(script("hang.py"), "DMO")
        running = sb.run(model.id)
        queued = sb.run(model.id)
        assert queued.status.value == "queued"
        sb.cancel(queued.id)

        events = list(queued.follow())

        assert [e.kind for e in events] == ["cancelled"]
        assert events[0].job.started_at is None
        # A job that did run still announces itself first.
        sb.cancel(running.id)
        kinds = [e.kind for e in running.follow()]
        assert (kinds[0], kinds[-1]) == ("started", "cancelled")
    finally:
        for job in sb.jobs():
            sb.cancel(job.id)
        sb.close()


# -- delete of read-only result folders --------------------------------------------------------


def _finished_job_with_nested_results(sb: Sandbox) -> tuple[int, Path, Path]:
    model = sb.upload(NESTED_RESULTS.encode(), "DMO", filename="nested.py")
    job = sb.run(model.id)
    info = job.wait(timeout=60)
    assert info.status.value == "success", job.logs()
    return model.id, Path(info.result_dir), Path(info.log_path)


def test_delete_removes_read_only_result_folders(lite: Sandbox, home: Path) -> None:
    # Run as root this shows only that nothing breaks (root ignores permissions); the tests
    # under uid 65534 below are the ones that failed before the fix.
    model_id, result_dir, log_path = _finished_job_with_nested_results(lite)
    job_dir = result_dir.parent
    (result_dir / "tables" / "deep").chmod(0o555)  # read-only, whether or not the runner did
    (result_dir / "tables").chmod(0o500)
    assert (result_dir / "tables" / "deep" / "b.csv").is_file()

    lite.delete(model_id)

    assert not job_dir.exists()
    assert not log_path.exists()
    assert list((home / "jobs").iterdir()) == []


def _runnable_by_anyone(path: str) -> bool:
    real = Path(os.path.realpath(path))
    return bool(real.stat().st_mode & 0o001) and all(p.stat().st_mode & 0o001 for p in real.parents)


def _base_python() -> str | None:
    """This Python, or the system's of the same version when this one is under /root."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(candidate) or not _runnable_by_anyone(candidate):
            continue
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if version == str(sys.version_info[:2]):
            return candidate
    return None


@pytest.fixture(scope="module")
def nobody_python() -> Iterator[str]:
    """A venv uid 65534 can run, seeing this checkout and this venv's packages (through a
    ``.pth`` file, so the job supervisors it starts see them too)."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to an unprivileged uid (as non-root, see above)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    base = _base_python()
    if base is None:
        pytest.skip("no Python of this version that uid 65534 may run")
    folder = Path(tempfile.mkdtemp(prefix="sandbox-nobody-venv-"))
    folder.chmod(0o755)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
    (purelib,) = folder.glob("lib/python3*/site-packages")
    (purelib / "sandbox_kit_checkout.pth").write_text(
        "\n".join([str(ROOT), *site.getsitepackages()]) + "\n"
    )
    yield str(folder / "bin" / "python")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    """A home owned by uid 65534 outside pytest's root-only temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-nobody-"))
    os.chown(folder, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _as_nobody(python: str, code: str, home: Path) -> dict[str, object]:
    """Run ``code`` with ``home`` as argv[1] under uid 65534; returns the JSON it prints."""
    user = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    done = subprocess.run(
        ["setpriv", *user, python, "-c", code, str(home)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


_DELETE_AS_NOBODY = """
import json, os, sys
from pathlib import Path
from sandbox_kit import Sandbox
from tests.test_defects import _finished_job_with_nested_results

sb = Sandbox(home=sys.argv[1])
model_id, result_dir, log_path = _finished_job_with_nested_results(sb)
writable = [p for p in [result_dir, *result_dir.rglob("*")] if os.access(p, os.W_OK)]
sb.delete(model_id)
print(json.dumps({"uid": os.getuid(), "writable_before": len(writable),
                  "left": [str(p) for p in Path(sys.argv[1], "jobs").rglob("*")],
                  "log_left": log_path.exists()}))
"""


def test_delete_removes_read_only_result_folders_as_an_unprivileged_user(
    nobody_python: str, nobody_home: Path
) -> None:
    found = _as_nobody(nobody_python, _DELETE_AS_NOBODY, nobody_home)

    assert found["uid"] == NOBODY
    assert found["writable_before"] == 0  # the runner froze the results: the case at issue
    assert found["left"] == []
    assert found["log_left"] is False


_DELETE_BLOCKED_AS_NOBODY = """
import json, os, sys, time
from pathlib import Path
from sandbox_kit import ConflictError, Sandbox
from tests.test_defects import _finished_job_with_nested_results

sb = Sandbox(home=sys.argv[1])
model_id, result_dir, log_path = _finished_job_with_nested_results(sb)
Path(sys.argv[1], "ready").write_text(str(result_dir))
while not Path(sys.argv[1], "blocked").exists():  # the test adds a folder we cannot empty
    time.sleep(0.05)
try:
    sb.delete(model_id)
    error = None
except ConflictError as exc:
    error = str(exc)
print(json.dumps({"error": error, "models": len(sb.models()), "jobs": len(sb.jobs())}))
"""


def test_delete_reports_folders_it_cannot_remove(nobody_python: str, nobody_home: Path) -> None:
    # The code waits for "blocked"; the test (root) makes a root-owned folder with a file in
    # the job's folder meanwhile, which uid 65534 can neither make writable nor empty.
    def block() -> None:
        ready = nobody_home / "ready"
        while not ready.exists():
            threading.Event().wait(0.05)
        stuck = Path(ready.read_text()).parent / "stuck"
        stuck.mkdir()
        (stuck / "file").write_text("root's")
        (nobody_home / "blocked").write_text("")

    helper = threading.Thread(target=block, daemon=True)
    helper.start()
    found = _as_nobody(nobody_python, _DELETE_BLOCKED_AS_NOBODY, nobody_home)
    helper.join(timeout=5)

    assert found["models"] == 0 and found["jobs"] == 0  # the records are gone all the same
    error = str(found["error"])
    assert "was deleted, but" in error and "could not be removed, first " in error
    assert "stuck/file: Permission denied; remove them by hand" in error
    # Everything else was removed: only the folder that was not ours (and its parents) stayed.
    left = sorted(p.relative_to(nobody_home / "jobs") for p in (nobody_home / "jobs").rglob("*"))
    assert [p.name for p in left] == [left[0].name, "stuck", "file"]


# -- a database newer than the code ------------------------------------------------------------


def _stamp(url: str, revision: str) -> None:
    db = Database(url)
    try:
        db.ensure_schema()
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        db.dispose()


def test_newer_database_is_a_sentence_and_changes_nothing(db_url: str, home: Path) -> None:
    _stamp(db_url, NEWER)

    with pytest.raises(SchemaVersionError) as info:
        Sandbox(home=home, db_url=db_url)

    assert str(info.value) == (
        f"the database at {public_url(db_url)} is at schema revision {NEWER}, newer than this "
        f"sandbox_kit ({HEAD_REVISION}); upgrade sandbox_kit"
    )
    assert (info.value.revision, info.value.head) == (NEWER, HEAD_REVISION)
    db = Database(db_url)
    try:
        with pytest.raises(SchemaVersionError):
            db.upgrade()  # the direct call refuses too, before Alembic runs
        assert db.revision() == NEWER
    finally:
        db.dispose()


def test_cli_on_a_newer_database_prints_error_and_exits_1(home: Path) -> None:
    url = f"sqlite:///{home / 'sandbox.db'}"
    _stamp(url, NEWER)

    done = cli("models", home=home)

    assert done.returncode == 1
    assert done.stderr == (
        f"Error: the database at {url} is at schema revision {NEWER}, newer than this sandbox_kit "
        f"({HEAD_REVISION}); upgrade sandbox_kit\n"
    )


def test_unknown_revision_is_named_as_unknown(home: Path) -> None:
    url = f"sqlite:///{home / 'sandbox.db'}"
    _stamp(url, "a1b2c3")
    with pytest.raises(SchemaVersionError, match="revision a1b2c3, unknown to this sandbox_kit"):
        Sandbox(home=home)


# -- an unreachable database -------------------------------------------------------------------


def _refused_port() -> int:
    """A local TCP port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_cli_on_an_unreachable_database_prints_one_line(home: Path, kind: str) -> None:
    if kind == "postgresql":
        port = _refused_port()
        url = f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:{port}/x"
        shown = f"postgresql+psycopg://postgres:***@127.0.0.1:{port}/x"
    else:
        url = shown = f"sqlite:///{home / 'no-such-folder' / 'x.db'}"

    done = cli("models", home=home, env={"SANDBOX_DB_URL": url})

    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: cannot reach the database at {shown}: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout
    assert ("refused" if kind == "postgresql" else "unable to open") in done.stderr


def test_cli_debug_shows_the_traceback_of_an_unreachable_database(home: Path) -> None:
    url = f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:{_refused_port()}/x"
    done = cli("--debug", "models", home=home, env={"SANDBOX_DB_URL": url})
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "DatabaseError" in done.stderr


def test_cli_on_a_url_without_its_driver_prints_one_line(home: Path) -> None:
    url = "postgresql+nosuchdriver://u:s3cret-pw@127.0.0.1/x"
    done = cli("jobs", home=home, env={"SANDBOX_DB_URL": url})
    assert done.returncode == 1
    assert done.stderr.startswith(
        "Error: cannot use the database URL postgresql+nosuchdriver://u:***@127.0.0.1/x: "
    )
    assert "s3cret-pw" not in done.stderr


def test_cli_on_a_database_that_fails_mid_command_prints_one_line(home: Path) -> None:
    # Opens fine (at head), then the first query on jobs fails: a broken database, not a bug.
    url = f"sqlite:///{home / 'sandbox.db'}"
    db = Database(url)
    try:
        db.ensure_schema()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE jobs"))
    finally:
        db.dispose()

    done = cli("jobs", home=home)

    assert done.returncode == 1
    assert done.stderr.startswith("Error: database error: no such table: jobs")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pw@h:5/d", "postgresql+psycopg://u:***@h:5/d"),
        ("postgresql+psycopg://u@h/d?password=pw", "postgresql+psycopg://u@h/d?password=***"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("not a url://u:pw@h", "not a url://u:***@h"),
    ],
)
def test_public_url_hides_passwords(url: str, shown: str) -> None:
    assert public_url(url) == shown
