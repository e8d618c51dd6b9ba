"""The jail (issue 8): hostile models stay inside it, normal models still work in it.

Each hostile script in ``tests/scripts/escape_*.py`` runs through :func:`jail.wrap` the way the
supervisor runs a model, against a realistic home (registry, stored models, another job's
results and log, a running job, a process holding secrets, a loopback service). The test asserts
the script was refused and that nothing of the home changed; a control run without the jail
shows each script does notice an escape. As root (CI, the dev container) models run as a
dedicated slot uid; as an ordinary user, in a user namespace. One test drops to uid 65534 to
check the ordinary-user mode from a root session.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_kit import jail
from sandbox_kit.errors import RunError
from tests.conftest import ROOT, SCRIPTS
from tests.test_examples import DMO_OBJECTIVE, RMO_OBJECTIVE_DEFAULT_COMMITMENT, SO_OBJECTIVE

AS_ROOT = os.geteuid() == 0
# Slots far above any real one, so a sandbox running on the same machine is not disturbed.
SLOT_UID = jail.slot_uid(900) if AS_ROOT else None
OTHER_UID = jail.slot_uid(901) if AS_ROOT else None
PY = sys.executable
NOBODY = 65534
RLIMIT_EXEC = ROOT / "sandbox_kit" / "rlimit_exec.py"


@pytest.fixture
def support() -> jail.JailSupport:
    """The jail on this machine; a skip (a failure under CI=true) without bubblewrap."""
    found = jail.probe()
    if found.level != "namespaces":
        if os.environ.get("CI") == "true":
            pytest.fail(f"the jail is required under CI=true: {found.reason}")
        pytest.skip(f"no bubblewrap jail here: {found.reason}")
    return found


@dataclasses.dataclass(frozen=True)
class Layout:
    """A sandbox home as the supervisor leaves it just before a job starts."""

    home: Path
    db: Path
    models: Path
    other_model: Path
    other_log: Path
    other_result: Path
    data_dir: Path
    job_dir: Path
    result_dir: Path


@pytest.fixture
def layout(home: Path) -> Layout:
    """Registry with a queued job's spec, two stored models, another job's log and results."""
    db = home / "sandbox.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, spec TEXT)")
    con.execute("INSERT INTO jobs VALUES ('DMO_1', '{\"interpreter\": \"/usr/bin/python3\"}')")
    con.commit()
    con.close()
    models = home / "models"
    models.mkdir()
    other_model = models / "x.py"
    other_model.write_text("print('x')\n")
    (home / "logs").mkdir()
    other_log = home / "logs" / "DMO_1700000000000_other1.log"
    other_log.write_text("INFO another job's private output\n")
    other_result = home / "jobs" / "DMO_1700000000000_other1" / "result"
    other_result.mkdir(parents=True)
    (other_result / "result.json").write_text('{"objective": 42}')
    data_dir = home / "jobs" / "DMO_1700000000000_input1" / "result"
    data_dir.mkdir(parents=True)
    (data_dir / "prices.csv").write_text("hour,price\n0,31.2\n")
    job_dir = home / "jobs" / "DMO_1764331200000_k3f9qa"
    result_dir = job_dir / "result"
    jail.prepare_dirs(job_dir, result_dir, SLOT_UID)
    return Layout(
        home, db, models, other_model, other_log, other_result, data_dir, job_dir, result_dir
    )


def _env(layout: Layout, data_dir: Path | None = None) -> dict[str, str]:
    env = {
        "JOB_ID": layout.job_dir.name,
        "MODEL_TYPE": "DMO",
        "CONFIG": "{}",
        "SANDBOX_JOB_DIR": str(layout.job_dir),
        "SANDBOX_RESULT_DIR": str(layout.result_dir),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(layout.job_dir),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
    }
    if data_dir is not None:
        env["DATA_SOURCE_DIR"] = str(data_dir)
    return env


def _install(layout: Layout, name: str) -> Path:
    """Store a script as an uploaded model (the supervisor runs models from ``models/``)."""
    model = layout.models / name
    shutil.copyfile(SCRIPTS / name, model)
    model.chmod(0o644)
    return model


def _wrap(layout: Layout, model: Path, argv: list[str], **options: Any) -> list[str]:
    options.setdefault("max_procs", 64)
    options.setdefault("uid", SLOT_UID)
    return jail.wrap(
        argv,
        job_dir=layout.job_dir,
        result_dir=layout.result_dir,
        model_path=model,
        interpreter=PY,
        **options,
    )


def _run(
    layout: Layout, model: Path, args: dict[str, Any], *, jailed: bool = True, **options: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    argv = [PY, "-u", str(model), json.dumps(args)]
    done = subprocess.run(
        _wrap(layout, model, argv, **options) if jailed else argv,
        env=_env(layout, options.get("data_dir")),
        cwd=layout.job_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    verdict = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return done, verdict


def _snapshot(home: Path, skip: Path) -> dict[str, tuple[str | None, int, int, int]]:
    """Every path under ``home`` but ``skip``: content digest, mode, owner, size."""
    seen = {}
    for folder, dirs, files in os.walk(home):
        dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in [*dirs, *files]:
            path = Path(folder, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            seen[str(path.relative_to(home))] = (digest, st.st_mode, st.st_uid, st.st_size)
    return seen


def _marked(marker: str) -> list[int]:
    """Live processes whose command line carries ``marker`` (not bwrap, nor what started it)."""
    bwrap = (jail.probe().bwrap or "bwrap").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and bwrap not in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@dataclasses.dataclass(frozen=True)
class Targets:
    """What a hostile model would go for outside its jail."""

    canary: str
    marker: str
    pids: list[int]
    port: int


@pytest.fixture
def targets(layout: Layout) -> Iterator[Targets]:
    """A process holding secrets (env and argv), another running job, a loopback listener."""
    canary = f"canary-{secrets.token_hex(8)}"
    marker = f"victim-{secrets.token_hex(6)}"
    secret_env = {
        **os.environ,
        "MY_API_KEY": canary,
        "SANDBOX_DB_URL": f"postgresql://sandbox:{canary}@127.0.0.1/sandbox",
    }
    sleeper = [PY, "-c", "import time; time.sleep(300)"]
    outside = subprocess.Popen([*sleeper, f"--token={canary}", marker], env=secret_env)
    procs = [outside]
    if AS_ROOT:
        other_job = layout.home / "jobs" / "DMO_1764331200001_other2"
        jail.prepare_dirs(other_job, other_job / "result", OTHER_UID)
        cmd = jail.wrap(
            [*sleeper, marker],
            job_dir=other_job,
            result_dir=other_job / "result",
            model_path=layout.other_model,
            interpreter=PY,
            uid=OTHER_UID,
        )
        procs.append(subprocess.Popen(cmd, env={"PATH": "/usr/bin:/bin"}, cwd=other_job))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    assert _wait_for(lambda: len(_marked(marker)) == len(procs))
    try:
        yield Targets(canary, marker, _marked(marker), listener.getsockname()[1])
    finally:
        listener.close()
        for proc in procs:
            proc.kill()
            proc.wait()


# Each hostile script and what it is told (an attacker's best guess of the paths).
ESCAPES: dict[str, tuple[str, Callable[[Layout, Targets], dict[str, Any]]]] = {
    "registry": ("escape_registry.py", lambda lay, t: {"db": str(lay.db)}),
    "models": (
        "escape_models.py",
        lambda lay, t: {"models_dir": str(lay.models), "models": [str(lay.other_model)]},
    ),
    "other_result": (
        "escape_other_result.py",
        lambda lay, t: {"other_result": str(lay.other_result)},
    ),
    "other_log": ("escape_other_log.py", lambda lay, t: {"other_log": str(lay.other_log)}),
    "proc_secrets": ("escape_proc_secrets.py", lambda lay, t: {"canary_reversed": t.canary[::-1]}),
    "loopback": ("escape_loopback.py", lambda lay, t: {"port": t.port}),
    "ptrace": (
        "escape_ptrace.py",
        lambda lay, t: {"pids": t.pids, "marker_reversed": t.marker[::-1]},
    ),
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_escape_is_refused_and_the_home_is_unchanged(
    escape: str, support: jail.JailSupport, layout: Layout, targets: Targets
) -> None:
    script, args = ESCAPES[escape]
    model = _install(layout, script)
    before = _snapshot(layout.home, layout.job_dir)
    done, verdict = _run(layout, model, args(layout, targets))
    assert done.returncode == 0, done.stderr
    assert verdict["escape"] == escape
    assert verdict["escaped"] is False, verdict
    assert _snapshot(layout.home, layout.job_dir) == before
    assert len(_marked(targets.marker)) == len(targets.pids)  # the victims live on


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_escape_script_notices_an_escape_without_the_jail(
    escape: str, layout: Layout, targets: Targets
) -> None:
    # The control: the same script run as a plain subprocess does get out, so a refusal above
    # is the jail's doing, not a broken script.
    script, args = ESCAPES[escape]
    model = _install(layout, script)
    # scan=False: the ptrace script must not stop every process of the host here.
    done, verdict = _run(layout, model, {**args(layout, targets), "scan": False}, jailed=False)
    assert done.returncode == 0, done.stderr
    assert verdict["escaped"] is True, verdict


def test_writes_outside_the_job_folder_stay_in_the_jail(
    support: jail.JailSupport, layout: Layout
) -> None:
    token = secrets.token_hex(8)
    folders = [
        "/tmp",
        "/dev/shm",
        "/",
        "/usr",
        "/etc",
        "/root",
        "/var/tmp",
        str(Path(PY).parent),
        str(layout.home),
        str(layout.models),
        str(layout.job_dir.parent),
    ]
    model = _install(layout, "escape_write_outside.py")
    before = _snapshot(layout.home, layout.job_dir)
    done, verdict = _run(layout, model, {"token": token, "folders": folders})
    assert done.returncode == 0, done.stderr
    assert verdict["outside"] == [], verdict
    private = {a["target"] for a in verdict["attempts"] if a["ok"]}
    assert private == {f"/tmp/escape-{token}", f"/dev/shm/escape-{token}"}
    assert not [f for f in folders if Path(f, f"escape-{token}").exists()]  # not on the host
    assert _snapshot(layout.home, layout.job_dir) == before


def _setpriv(uid: int | None) -> list[str]:
    """Run as ``uid`` (and its gid), no supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


@pytest.fixture
def setuid_id() -> Iterator[Path | None]:
    """A setuid-root copy of ``id`` in a folder any uid can reach (None unless root)."""
    if not AS_ROOT:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="sandbox-jail-suid-"))
    folder.chmod(0o755)
    copy = folder / "id"
    shutil.copyfile("/usr/bin/id", copy)
    copy.chmod(0o4755)
    try:
        yield copy
    finally:
        shutil.rmtree(folder)


def test_setuid_binary_gains_nothing(
    support: jail.JailSupport, layout: Layout, setuid_id: Path | None
) -> None:
    if setuid_id is not None:
        # The copy does work outside the jail for the job uid: the host honours setuid here.
        outside = subprocess.run(
            [*_setpriv(SLOT_UID), str(setuid_id), "-u"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert outside.stdout.strip() == "0"
    model = _install(layout, "escape_setuid.py")
    data = setuid_id.parent if setuid_id else None
    args = {"suid": str(setuid_id) if setuid_id else None}
    done, verdict = _run(layout, model, args, data_dir=data)
    assert done.returncode == 0, done.stderr
    assert verdict["escaped"] is False, verdict
    assert verdict["no_new_privs"] == "1"
    assert int(verdict["cap_eff"], 16) == int(verdict["cap_prm"], 16) == 0
    assert int(verdict["cap_bnd"], 16) == 0
    assert verdict["euid"] == (SLOT_UID if AS_ROOT else os.geteuid())
    if setuid_id is not None:
        assert verdict["suid_euid"] == str(SLOT_UID)
    assert verdict["su_out"] != "0"


@pytest.mark.slow
def test_fork_bomb_is_contained(support: jail.JailSupport, layout: Layout) -> None:
    model = _install(layout, "escape_fork_bomb.py")
    done, verdict = _run(layout, model, {"count": 5000}, max_procs=64)
    assert done.returncode == 0, done.stderr
    assert verdict["escaped"] is False
    assert 0 < verdict["got"] < 64, verdict
    assert "Resource temporarily unavailable" in verdict["error"]


def test_normal_model_runs_with_numpy_and_scipy(support: jail.JailSupport, layout: Layout) -> None:
    model = _install(layout, "jail_normal.py")
    done, facts = _run(layout, model, {})
    assert done.returncode == 0, done.stderr
    assert facts["objective"] == pytest.approx(3.0)
    assert facts["prefix"] == sys.prefix
    assert facts["cwd"] == facts["home"] == str(layout.job_dir)
    assert facts["interfaces"] == ["lo"]
    assert facts["hostname"] == "sandbox"
    assert facts["pid"] < 10  # its own pid namespace
    result = layout.result_dir / "result.json"
    assert json.loads(result.read_text())["objective"] == pytest.approx(3.0)
    assert not Path("/tmp/scratch.txt").exists()
    if AS_ROOT:
        assert facts["uid"] == SLOT_UID
        assert result.stat().st_uid == SLOT_UID
        jail.reclaim_dirs(layout.job_dir, layout.result_dir)
        assert result.stat().st_uid == os.geteuid()
        assert layout.result_dir.stat().st_uid == os.geteuid()


def test_finished_results_are_a_read_only_data_source(
    support: jail.JailSupport, layout: Layout
) -> None:
    # Job one writes its results; reclaimed, they are the next job's DATA_SOURCE_DIR (another
    # slot uid): readable, not writable.
    first = _install(layout, "jail_normal.py")
    done, _ = _run(layout, first, {})
    assert done.returncode == 0, done.stderr
    jail.reclaim_dirs(layout.job_dir, layout.result_dir)
    second = layout.home / "jobs" / "DMO_1764331200002_next01"
    jail.prepare_dirs(second, second / "result", OTHER_UID)
    code = (
        "import json, os, sys; d = os.environ['DATA_SOURCE_DIR']; "
        "print(json.load(open(os.path.join(d, 'result.json')))['objective']); "
        "open(os.path.join(d, 'result.json'), 'a')"
    )
    done = subprocess.run(
        jail.wrap(
            [PY, "-c", code],
            job_dir=second,
            result_dir=second / "result",
            model_path=first,
            interpreter=PY,
            data_dir=layout.result_dir,
            uid=OTHER_UID,
        ),
        env={**_env(layout, layout.result_dir), "SANDBOX_JOB_DIR": str(second)},
        cwd=second,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == "3.0\n", done.stderr
    assert "Read-only file system" in done.stderr or "Permission denied" in done.stderr


def test_network_host_reaches_loopback(
    support: jail.JailSupport, layout: Layout, targets: Targets
) -> None:
    model = _install(layout, "escape_loopback.py")
    done, verdict = _run(layout, model, {"port": targets.port}, network="host")
    assert done.returncode == 0, done.stderr
    assert verdict["ok"] is True, verdict


def test_identity_and_limits(support: jail.JailSupport, layout: Layout) -> None:
    model = _install(layout, "jail_identity.py")
    done, facts = _run(layout, model, {}, max_procs=77)
    assert done.returncode == 0, done.stderr
    assert facts["no_new_privs"] == "1"
    assert int(facts["cap_eff"], 16) == int(facts["cap_bnd"], 16) == 0
    assert facts["nproc"] == [77, 77]
    assert facts["interfaces"] == ["lo"]
    assert facts["root"] == _expected_root(layout)
    assert facts["pids"] == [1, 2]  # bwrap's init and the model: nothing of the host
    if AS_ROOT:
        assert (facts["uid"], facts["gid"], facts["groups"]) == (SLOT_UID, SLOT_UID, [])


def _expected_root(layout: Layout) -> list[str]:
    """The jail's ``/``: system folders, and the first folder of each path bound into it."""
    system = {
        d for d in ("bin", "sbin", "lib", "lib32", "lib64", "libx32") if Path("/", d).exists()
    }
    bound = (sys.prefix, os.path.realpath(sys.base_prefix), ROOT, layout.job_dir)
    return sorted({"dev", "etc", "proc", "tmp", "usr", *system, *(Path(p).parts[1] for p in bound)})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dmo", "rmo", "so"])
def test_example_models_run_through_rlimit_exec(
    name: str, support: jail.JailSupport, layout: Layout
) -> None:
    # Exactly the supervisor's command (rlimit_exec.py, then the model), wrapped.
    model = layout.models / f"{name}.py"
    shutil.copyfile(ROOT / "models" / "examples" / f"{name}.py", model)
    model.chmod(0o644)
    limits = [str(2 << 30), "120", str(64 << 20), "256"]
    argv = [PY, "-I", "-S", str(RLIMIT_EXEC), *limits, "--", PY, "-u", str(model)]
    done = subprocess.run(
        _wrap(layout, model, argv),
        env={**_env(layout), "MODEL_TYPE": name.upper()},
        cwd=layout.job_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((layout.result_dir / "result.json").read_text())
    expected = {"dmo": DMO_OBJECTIVE, "rmo": RMO_OBJECTIVE_DEFAULT_COMMITMENT, "so": SO_OBJECTIVE}
    assert result["objective"] == pytest.approx(expected[name], rel=1e-6)


def _start_tree(
    layout: Layout, marker: str, *extra: str, parent: bool = False
) -> subprocess.Popen[str]:
    model = _install(layout, "jail_tree.py")
    cmd = _wrap(layout, model, [PY, "-u", str(model), marker, *extra])
    if parent:  # an intermediate process stands for the supervisor
        cmd = [
            PY,
            "-c",
            "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)",
            *cmd,
        ]
    proc = subprocess.Popen(
        cmd,
        env=_env(layout),
        cwd=layout.job_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("ready")
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killpg-bwrap", "kill-init", "parent-dies"])
def test_killing_the_jail_kills_the_whole_tree(
    how: str, support: jail.JailSupport, layout: Layout
) -> None:
    marker = f"tree-{secrets.token_hex(6)}"
    proc = _start_tree(layout, marker, parent=how == "parent-dies")
    assert _wait_for(lambda: len(_marked(marker)) == 2), _marked(marker)  # model, grandchild
    if how == "killpg-bwrap":
        os.killpg(proc.pid, signal.SIGKILL)
    elif how == "kill-init":
        init = jail.init_pid(proc.pid)
        assert init is not None
        os.kill(init, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)  # the "supervisor" dies; bwrap follows, then the tree
    proc.wait(timeout=10)
    assert _wait_for(lambda: not _marked(marker)), _marked(marker)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.slow
def test_graceful_stop_reaches_the_model_and_ends_the_tree(
    support: jail.JailSupport, layout: Layout
) -> None:
    marker = f"tree-{secrets.token_hex(6)}"
    proc = _start_tree(layout, marker)
    assert _wait_for(lambda: len(_marked(marker)) == 2)
    init = jail.init_pid(proc.pid)
    assert init is not None
    os.killpg(init, signal.SIGTERM)  # the model's process group; bwrap's init ignores it
    assert jail.returncode(proc.wait(timeout=10)) == 3
    assert proc.stdout is not None
    assert "model got SIGTERM" in proc.stdout.read()
    proc.stdout.close()
    assert _wait_for(lambda: not _marked(marker)), _marked(marker)  # the setsid grandchild too


def test_model_exit_ends_setsid_grandchildren(support: jail.JailSupport, layout: Layout) -> None:
    marker = f"tree-{secrets.token_hex(6)}"
    proc = _start_tree(layout, marker, "exit")
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None
    proc.stdout.close()
    assert _wait_for(lambda: not _marked(marker)), _marked(marker)


def test_signal_death_is_reported_as_a_signal(support: jail.JailSupport, layout: Layout) -> None:
    model = _install(layout, "jail_identity.py")
    argv = [PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGXCPU)"]
    done = subprocess.run(
        _wrap(layout, model, argv), env=_env(layout), cwd=layout.job_dir, check=False
    )
    assert done.returncode == 128 + signal.SIGXCPU
    assert jail.returncode(done.returncode) == -signal.SIGXCPU


def test_model_fd_gives_a_read_only_snapshot(support: jail.JailSupport, layout: Layout) -> None:
    model = layout.models / "snap.py"
    model.write_text("print('checked version')\n")
    fd = os.open(model, os.O_RDONLY)
    try:
        replacement = layout.models / "snap.py.new"
        replacement.write_text("print('swapped in after the check')\n")
        replacement.replace(model)  # a new file at the path; the descriptor keeps the old one
        code = f"exec(open({str(model)!r}).read()); open({str(model)!r}, 'a')"
        done = subprocess.run(
            _wrap(layout, model, [PY, "-c", code], model_fd=fd),
            env=_env(layout),
            cwd=layout.job_dir,
            capture_output=True,
            text=True,
            pass_fds=(fd,),
            check=False,
        )
    finally:
        os.close(fd)
    assert done.stdout == "checked version\n"
    assert "Read-only file system" in done.stderr or "Permission denied" in done.stderr


def test_unshare_fallback_isolates_pid_uid_and_network(support: jail.JailSupport) -> None:
    # Without a filesystem view the job uid must reach the files itself: a world-readable
    # folder, and the system Python (the venv's lives under /root, mode 0700).
    folder = Path(tempfile.mkdtemp(prefix="sandbox-jail-unshare-"))
    try:
        folder.chmod(0o755)
        model = folder / "jail_identity.py"
        shutil.copyfile(SCRIPTS / "jail_identity.py", model)
        model.chmod(0o644)
        cmd = jail.wrap(
            ["/usr/bin/python3", str(model)],
            job_dir=folder,
            result_dir=folder,
            model_path=model,
            interpreter="/usr/bin/python3",
            uid=SLOT_UID,
            max_procs=50,
            tool="unshare",
        )
        done = subprocess.run(
            cmd,
            cwd=folder,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["pid"] == 1
    assert facts["nproc"] == [50, 50]
    assert facts["no_new_privs"] == "1"
    assert int(facts["cap_eff"], 16) == 0
    assert facts["interfaces"] == ["lo"]
    if AS_ROOT:
        assert facts["uid"] == SLOT_UID


_DRIVER = """
import json, subprocess, sys
from sandbox_kit import jail
args = json.loads(sys.argv[1])
support = jail.probe()
out = {"level": support.level, "root": support.root, "reason": support.reason, "runs": {}}
if support.tool == "bwrap":
    for model, model_args in args["runs"].items():
        cmd = jail.wrap([sys.executable, "-u", model, json.dumps(model_args)], job_dir=args["job"],
                        result_dir=args["result"], model_path=model, interpreter=sys.executable,
                        max_procs=64)
        done = subprocess.run(cmd, cwd=args["job"], env=args["env"], capture_output=True,
                              text=True, timeout=60)
        out["runs"][model] = {"rc": done.returncode, "stderr": done.stderr,
                              "verdict": json.loads(done.stdout.splitlines()[-1])}
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not AS_ROOT, reason="drops to uid 65534 with setpriv, which needs root")
def test_sandbox_running_as_an_ordinary_user_uses_a_user_namespace(
    support: jail.JailSupport,
) -> None:
    # An ordinary user's home in a folder it owns; the system Python, because the venv's lives
    # under /root (mode 0700), out of reach of uid 65534.
    base = Path(tempfile.mkdtemp(prefix="sandbox-jail-nobody-"))
    try:
        home = base / "home"
        for sub in ("models", "logs", "jobs/J/result"):
            (home / sub).mkdir(parents=True)
        (home / "sandbox.db").write_bytes(b"SQLite format 3\x00registry")
        runs: dict[str, dict[str, str]] = {}
        for name in ("jail_identity.py", "escape_registry.py"):
            shutil.copyfile(SCRIPTS / name, home / "models" / name)
        runs[str(home / "models" / "jail_identity.py")] = {}
        runs[str(home / "models" / "escape_registry.py")] = {"db": str(home / "sandbox.db")}
        for path in [base, *base.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        job = home / "jobs" / "J"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(job), "SANDBOX_JOB_DIR": str(job)}
        env["SANDBOX_RESULT_DIR"] = str(job / "result")
        args = {"runs": runs, "job": str(job), "result": str(job / "result"), "env": env}
        done = subprocess.run(
            [*_setpriv(NOBODY), "/usr/bin/python3", "-c", _DRIVER, json.dumps(args)],
            env={"PATH": "/usr/bin:/bin", "HOME": str(base), "PYTHONPATH": str(ROOT)},
            cwd=base,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        if out["level"] != "namespaces":
            pytest.skip(f"the kernel refuses uid {NOBODY} a user namespace: {out['reason']}")
        assert out["root"] is False
        identity = out["runs"][str(home / "models" / "jail_identity.py")]
        assert identity["rc"] == 0, identity["stderr"]
        facts = identity["verdict"]
        assert facts["uid"] == NOBODY
        assert facts["pid"] < 10
        assert facts["nproc"] == [64, 64]
        assert facts["interfaces"] == ["lo"]
        assert facts["no_new_privs"] == "1"
        assert int(facts["cap_eff"], 16) == 0
        registry = out["runs"][str(home / "models" / "escape_registry.py")]
        assert registry["rc"] == 0, registry["stderr"]
        assert registry["verdict"]["escaped"] is False, registry["verdict"]
        assert (home / "sandbox.db").read_bytes() == b"SQLite format 3\x00registry"
    finally:
        shutil.rmtree(base)


# --- the command line and the helpers -----------------------------------------------------------


def test_command_line_shows_only_what_the_job_needs(
    support: jail.JailSupport, layout: Layout
) -> None:
    model = _install(layout, "jail_normal.py")
    cmd = _wrap(layout, model, [PY, "-u", str(model)], data_dir=layout.data_dir)
    joined = " ".join(cmd)
    for flag in ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"]:
        assert flag in cmd
    for flag in ["--die-with-parent", "--new-session"]:
        assert flag in cmd
    assert cmd[cmd.index("--cap-drop") + 1] == "ALL"
    assert _op(cmd, str(layout.job_dir)) == ["--bind", str(layout.job_dir), str(layout.job_dir)]
    assert _op(cmd, str(layout.result_dir))[0] == "--bind"
    assert _op(cmd, str(layout.data_dir))[0] == "--ro-bind"
    assert _op(cmd, str(model))[0] == "--ro-bind"
    assert _op(cmd, sys.prefix)[0] == "--ro-bind"
    assert "--size" in cmd and "--tmpfs" in cmd
    assert cmd[cmd.index("--chdir") + 1] == str(layout.job_dir)
    for hidden in [layout.db, layout.other_model, layout.other_log, layout.other_result]:
        assert str(hidden) not in joined
    sources = [cmd[i + 1] for i, arg in enumerate(cmd) if arg in ("--bind", "--ro-bind")]
    for folder in [layout.home, layout.models, layout.home / "logs", layout.home / "jobs"]:
        assert str(folder) not in sources  # at most created empty, to hold what is bound
    if AS_ROOT:
        assert f"--reuid={SLOT_UID}" in cmd and "--unshare-user" not in cmd
    else:
        assert "--unshare-user" in cmd
    assert "--unshare-net" not in _wrap(layout, model, [PY], network="host")


def _op(cmd: list[str], dest: str) -> list[str]:
    """The mount operation whose destination is ``dest`` (flag, source, destination)."""
    end = cmd.index("--")
    for i in range(end):
        if cmd[i] == dest and cmd[i - 2].startswith("--"):
            return cmd[i - 2 : i + 1]
    raise AssertionError(f"{dest} is not mounted")


def test_wrap_refuses_what_it_cannot_isolate(support: jail.JailSupport, layout: Layout) -> None:
    model = _install(layout, "jail_normal.py")
    with pytest.raises(ValueError, match="network"):
        _wrap(layout, model, [PY], network="bridge")
    with pytest.raises(RunError, match="contains its folder"):
        _wrap(layout, model, [PY], read_only=[layout.home])
    with pytest.raises(RunError, match="does not exist"):
        _wrap(layout, model, [PY], data_dir=layout.home / "missing")
    if AS_ROOT:
        with pytest.raises(ValueError, match="dedicated job uid"):
            jail.wrap(
                [PY],
                job_dir=layout.job_dir,
                result_dir=layout.result_dir,
                model_path=model,
                interpreter=PY,
            )
    else:
        with pytest.raises(ValueError, match="only root"):
            _wrap(layout, model, [PY], uid=os.geteuid() + 1)


def test_interpreter_roots_follow_the_venv_to_its_python(tmp_path: Path) -> None:
    base = tmp_path / "opt" / "python3.11"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "python3.11").write_text("")
    (base / "bin" / "python3").symlink_to("python3.11")
    venv = tmp_path / "srv" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(base / "bin" / "python3")
    (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\nversion = 3.11.7\n")
    assert sorted(jail._python_roots(str(venv / "bin" / "python"))) == sorted(
        [str(base), str(venv)]
    )
    # A venv of the system Python needs only itself: /usr is bound anyway.
    system_venv = tmp_path / "srv" / "sysvenv"
    (system_venv / "bin").mkdir(parents=True)
    (system_venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (system_venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert jail._python_roots(str(system_venv / "bin" / "python")) == [str(system_venv)]
    # This test's own interpreter: the venv and the Python it was made from.
    roots = jail._python_roots(PY)
    assert sys.prefix in roots
    assert any(sys.base_prefix.startswith(r) for r in roots) or sys.base_prefix.startswith("/usr")
    assert jail._python_roots("/usr/bin/python3") == []  # under /usr, bound anyway


def test_prepare_and_reclaim_dirs_never_follow_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the job's")
    job = tmp_path / "job"
    result = job / "result"
    job.mkdir()
    (job / "input.csv").write_text("a\n")
    (job / "link").symlink_to(outside)
    (job / "tool").write_text("#!/bin/sh\n")
    (job / "tool").chmod(0o6755)  # what a model could leave behind
    uid = jail.slot_uid(902) if AS_ROOT else None
    jail.prepare_dirs(job, result, uid)
    assert stat.S_IMODE(job.stat().st_mode) == stat.S_IMODE(result.stat().st_mode) == 0o700
    me = os.geteuid()
    if AS_ROOT:
        assert job.stat().st_uid == result.stat().st_uid == uid
        assert (job / "input.csv").stat().st_uid == uid
        assert (job / "link").lstat().st_uid == uid
    assert outside.stat().st_uid == me
    outside.chmod(0o600)
    jail.reclaim_dirs(job, result)
    for path in (job, result, job / "input.csv"):
        assert path.stat().st_uid == me
    assert stat.S_IMODE(result.stat().st_mode) == 0o755  # readable as a later DATA_SOURCE_DIR
    assert stat.S_IMODE((job / "input.csv").stat().st_mode) & 0o044 == 0o044
    assert stat.S_IMODE((job / "tool").stat().st_mode) == 0o755
    assert outside.stat().st_uid == me
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600  # the link was not followed


def test_slot_uid() -> None:
    assert jail.slot_uid(0) == jail.DEFAULT_UID_BASE
    assert jail.slot_uid(3, base=300_000) == 300_003
    with pytest.raises(ValueError, match="slot index"):
        jail.slot_uid(-1)
    with pytest.raises(ValueError, match="system accounts"):
        jail.slot_uid(0, base=500)


@pytest.mark.parametrize(
    ("rc", "tool", "expected"),
    [
        (0, "bwrap", 0),
        (1, "bwrap", 1),
        (137, "bwrap", -9),
        (152, "bwrap", -24),
        (-9, "bwrap", -9),
        (137, "unshare", 137),
        (-9, "unshare", -9),
    ],
)
def test_returncode(rc: int, tool: str, expected: int) -> None:
    assert jail.returncode(rc, tool=tool) == expected


def test_probe_is_cached_and_reports_the_tools(support: jail.JailSupport) -> None:
    assert jail.probe() is support
    assert support.tool == "bwrap" and support.isolated and support.reason == ""
    assert support.bwrap and os.access(support.bwrap, os.X_OK)
    assert support.bwrap_version and support.bwrap_version[0].isdigit()
    assert support.root is AS_ROOT
    assert support.prlimit and support.setpriv and support.unshare


def test_doctor_report(support: jail.JailSupport) -> None:
    rows = dict(jail.doctor_report())
    assert rows["isolation"] == "namespaces (bubblewrap)"
    assert rows["bubblewrap"] == f"{support.bwrap_version} at {support.bwrap}"
    assert rows["fallback"] == "unshare + setpriv: works"
    assert "job identity" in rows and "user namespaces" in rows and "process limit" in rows
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in jail.doctor_report())


def test_probe_explains_a_missing_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jail, "_SEARCH_PATH", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    jail.probe.cache_clear()
    jail._found.cache_clear()
    try:
        found = jail.probe()
        assert found.level == "none" and found.tool is None
        assert "bwrap not found (searched $PATH and /nonexistent)" in found.reason
        assert "unshare and setpriv not found" in found.reason
        with pytest.raises(RunError, match="isolation unavailable: bubblewrap: bwrap not found"):
            jail.wrap([PY], job_dir="/", result_dir="/", model_path=PY, interpreter=PY, uid=1)
        rows = dict(jail.doctor_report())
        assert rows["isolation"] == "none"
        assert rows["bubblewrap"].startswith("not found")
    finally:
        jail.probe.cache_clear()
        jail._found.cache_clear()
