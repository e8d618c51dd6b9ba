"""The jail: the command line that runs one model isolated from the sandbox and from other jobs.

Issue 8. The supervisor stays outside the jail (it must always be able to kill the tree, read
the pipes and write the registry); only the model and its children are inside. :func:`wrap`
turns the supervisor's model command into one that runs under bubblewrap (``bwrap``):

- **identity**: never root, never the sandbox's own uid. As root, the model runs as a
  dedicated uid per job slot (:func:`slot_uid`): bwrap sets up the mounts as root, then
  ``setpriv`` switches to the job uid with no capabilities. (bwrap's ``--uid`` is no substitute:
  it names the uid *inside* a user namespace and maps it to the caller's uid, so the model would
  still be uid 0 to the kernel.) As an ordinary user, an unprivileged user namespace
  (``--unshare-user --disable-userns``) gives the same separation. Either way
  ``PR_SET_NO_NEW_PRIVS`` is set (bwrap always sets it) and every capability is dropped.
- **pid namespace**: the model sees only its own tree in ``/proc``; when the model exits, or
  bwrap's pid 1 or bwrap itself is killed, the kernel kills everything left inside, grandchildren
  that called ``setsid()`` too. ``--die-with-parent`` ties the jail to the supervisor.
- **mount namespace**: system directories, a minimal ``/etc`` and the interpreters' prefixes
  (the venv and the Python it links to, at their own paths) read-only; a size-limited private
  ``/tmp`` and ``/dev/shm``; the job folder and the result folder read-write; the data folder
  and the model file read-only; the package folder read-only (``rlimit_exec.py``,
  ``model_api.py``). Nothing else of ``SANDBOX_HOME``: no database, ``models/``, ``logs/`` or
  other job. Directories created to hold those paths are root-owned ``0755`` and the jail's root
  is read-only, so ``/root`` being ``0700`` on the host does not matter.
- **network, IPC, UTS namespaces**: loopback only unless ``network="host"``.
- **process limit**: ``RLIMIT_NPROC`` set by ``prlimit`` inside the jail. As root it counts
  the processes of the slot's uid (one slot, one uid). In a user namespace the kernel (5.14+)
  counts per namespace and uid, so the limit holds one job's tree, not every process of the
  sandbox's user. A cgroup would be the alternative, but delegating one is rarely possible.

util-linux ``unshare`` + ``setpriv`` is the fallback (level ``partial``, as root only: an
ordinary user's job would keep the sandbox's uid): the same job uid,
pid, network, IPC and UTS separation and the process limit, but **no filesystem view** (the
model sees the host's files with the job uid's permissions) and the model is pid 1 of its
namespace (SIGTERM without a handler is ignored; stop it with SIGKILL). bwrap is preferred
for the filesystem view; ``bench/bench_isolation.py`` measures both.

Integration (the supervisor's side)::

    support = jail.probe()                        # cached per process
    uid = jail.slot_uid(slot) if os.geteuid() == 0 else None
    jail.prepare_dirs(job_dir, result_dir, uid)  # chown to the job uid (root only)
    cmd = jail.wrap(argv, job_dir=..., result_dir=..., model_path=..., interpreter=..., uid=uid)
    proc = subprocess.Popen(cmd, env=model_env, cwd=job_dir, start_new_session=True, ...)
    ...                                           # graceful stop: os.killpg(jail.init_pid(...))
    rc = jail.returncode(proc.wait())             # bwrap reports death by signal N as 128 + N
    jail.reclaim_dirs(job_dir, result_dir)        # back to the sandbox's uid

Start ``Popen`` from a thread that lives as long as the job: the parent-death signal follows
the thread that forked, not the process. Pass the model's scrubbed environment to ``Popen``:
bwrap hands its environment on, and its pid 1 keeps a copy in ``/proc/1/environ``.

Standard library only, imported by the supervisor before the model starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from sandbox_kit.errors import RunError

__all__ = [
    "DEFAULT_MAX_PROCS",
    "DEFAULT_SHM_SIZE_MB",
    "DEFAULT_TMP_SIZE_MB",
    "DEFAULT_UID_BASE",
    "JailSupport",
    "doctor_report",
    "init_pid",
    "prepare_dirs",
    "probe",
    "reclaim_dirs",
    "returncode",
    "slot_uid",
    "support",
    "wrap",
]

DEFAULT_UID_BASE = 200_000
"""First job uid when the sandbox runs as root: slot ``n`` runs as ``DEFAULT_UID_BASE + n``."""
DEFAULT_TMP_SIZE_MB = 512
DEFAULT_SHM_SIZE_MB = 64
DEFAULT_MAX_PROCS = 256
"""Processes and threads per job (``RLIMIT_NPROC``); thread pools count too."""

PathLike = str | os.PathLike[str]

# Searched after $PATH: a supervisor started with a minimal environment still finds the tools.
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs read from /etc: the loader cache, time zone, CA certificates, name service for
# network="host", alternatives (some /usr/bin entries link there). No passwd, shadow or hostname.
_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "ssl/certs",
    "ssl/openssl.cnf",
    "hosts",
    "resolv.conf",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "protocols",
    "services",
    "mime.types",
)
_MIN_SIZE = (0, 7, 0)  # bwrap --size for tmpfs
_MIN_DISABLE_USERNS = (0, 8, 0)
_TRIAL_TIMEOUT_S = 10


@dataclasses.dataclass(frozen=True, slots=True)
class JailSupport:
    """What isolation this machine offers, from :func:`probe`.

    Attributes:
        level: ``"namespaces"`` (bubblewrap: namespaces and a minimal filesystem view),
            ``"partial"`` (unshare + setpriv: namespaces, no filesystem view) or ``"none"``.
        tool: ``"bwrap"``, ``"unshare"`` or None: what :func:`wrap` uses by default.
        root: the sandbox runs as root, so jobs need a dedicated uid (:func:`slot_uid`).
        bwrap: path of ``bwrap``, or None when not found.
        bwrap_version: e.g. ``"0.8.0"``.
        unshare: path of util-linux ``unshare``, or None.
        setpriv: path of util-linux ``setpriv``, or None.
        prlimit: path of util-linux ``prlimit`` (the process limit), or None.
        userns: None when unprivileged user namespaces are usable (or not needed, as root),
            else why not.
        reasons: why each stronger level is unavailable; empty at level ``namespaces``.
    """

    level: str
    tool: str | None
    root: bool
    bwrap: str | None
    bwrap_version: str | None
    unshare: str | None
    setpriv: str | None
    prlimit: str | None
    userns: str | None
    reasons: tuple[str, ...]

    @property
    def isolated(self) -> bool:
        """Whether a job can run in namespaces at all."""
        return self.level != "none"

    @property
    def reason(self) -> str:
        """The reasons as one sentence (empty at level ``namespaces``)."""
        return "; ".join(self.reasons)


@functools.cache
def probe() -> JailSupport:
    """Detect the isolation available here, with a real trial run; cached per process.

    bubblewrap is tried first (``bwrap ... true`` with the options :func:`wrap` uses); the
    ``unshare`` fallback is tried only when bubblewrap fails. A trial costs a jail's start
    (~10-30 ms): a process that already knows the tool (e.g. from the job's spec) passes
    ``tool=`` to :func:`wrap` and skips it.
    """
    found = _found()
    problem = _bwrap_problem(found)
    if problem is None:
        return dataclasses.replace(found, level="namespaces", tool="bwrap")
    reasons = (f"bubblewrap: {problem}",)
    problem = _unshare_problem(found)
    if problem is None:
        return dataclasses.replace(found, level="partial", tool="unshare", reasons=reasons)
    return dataclasses.replace(found, reasons=(*reasons, f"unshare + setpriv: {problem}"))


def support(tool: str) -> JailSupport:
    """What :func:`probe` would say when ``tool`` is known to work, without a trial run."""
    level = {"bwrap": "namespaces", "unshare": "partial"}.get(tool)
    if level is None:
        raise ValueError(f"tool must be 'bwrap' or 'unshare', not {tool!r}")
    return dataclasses.replace(_found(), level=level, tool=tool)


def slot_uid(slot_index: int, *, base: int = DEFAULT_UID_BASE) -> int:
    """The dedicated uid (and gid) of a job slot: ``base + slot_index``.

    One uid per concurrently running job, so two jobs cannot signal or ptrace each other and
    ``RLIMIT_NPROC`` counts one job. The uids need no ``/etc/passwd`` entry; pick a ``base``
    no real account or container id mapping uses.
    """
    if slot_index < 0:
        raise ValueError(f"slot index must be >= 0, got {slot_index}")
    if base < 1000:
        raise ValueError(f"job uid base {base} would collide with system accounts (< 1000)")
    return base + slot_index


def wrap(
    argv: Sequence[str],
    *,
    job_dir: PathLike,
    result_dir: PathLike,
    model_path: PathLike,
    interpreter: PathLike,
    data_dir: PathLike | None = None,
    network: str = "none",
    uid: int | None = None,
    gid: int | None = None,
    tmp_size_mb: int = DEFAULT_TMP_SIZE_MB,
    shm_size_mb: int = DEFAULT_SHM_SIZE_MB,
    max_procs: int | None = DEFAULT_MAX_PROCS,
    read_only: Iterable[PathLike] = (),
    model_fd: int | None = None,
    tool: str | None = None,
) -> list[str]:
    """The command line that runs ``argv`` in a jail; pass it to ``Popen`` with the model's env.

    Args:
        argv: the model command as it would run unjailed (absolute paths; e.g. the supervisor's
            ``python -I -S rlimit_exec.py ... -- interpreter -u model.py``).
        job_dir: read-write, the working directory (and ``HOME``) at the same path inside.
        result_dir: read-write at the same path; its own mount (unless it is ``job_dir``), so
            the model cannot replace it with a symbolic link.
        model_path: the model file, read-only at the same path.
        interpreter: the model's Python; its venv and the installation it links to are bound
            read-only (``argv[0]``'s too).
        data_dir: ``DATA_SOURCE_DIR``, read-only, when given.
        network: ``"none"`` (loopback only) or ``"host"``.
        uid: the job uid (:func:`slot_uid`); required as root, must be None (or the own uid)
            otherwise.
        gid: the job gid; defaults to ``uid``.
        tmp_size_mb: size of the private ``/tmp``.
        shm_size_mb: size of the private ``/dev/shm``.
        max_procs: ``RLIMIT_NPROC`` inside the jail; None or 0 leaves it as inherited.
        read_only: more paths to bind read-only at the same path.
        model_fd: an open descriptor of the model file (pass it with ``Popen(pass_fds=...)``):
            the jail then gets a read-only copy of exactly those bytes, e.g. the ones whose
            sha256 the supervisor just checked. ``model_path`` is where it appears.
        tool: ``"bwrap"`` or ``"unshare"``; default: what :func:`probe` found best.

    Raises:
        RunError: no isolation is available here, or a path the jail needs is missing.
        ValueError: an argument is inconsistent (root without a job uid, unknown network, ...).
    """
    support = _found() if tool else probe()
    tool = tool or support.tool
    if tool is None:
        raise RunError(f"isolation unavailable: {support.reason}")
    if tool not in ("bwrap", "unshare"):
        raise ValueError(f"tool must be 'bwrap' or 'unshare', not {tool!r}")
    if network not in ("none", "host"):
        raise ValueError(f"network must be 'none' or 'host', not {network!r}")
    if support.root and uid is None:
        raise ValueError("the sandbox runs as root: pass a dedicated job uid (jail.slot_uid)")
    if not support.root and uid not in (None, os.geteuid()):
        raise ValueError(f"only root can run a job as uid {uid}")
    switch = (uid, uid if gid is None else gid) if support.root and uid is not None else None
    limit = _prlimit(support, max_procs)
    if tool == "unshare":
        if not support.root:
            raise RunError(f"isolation unavailable: unshare + setpriv {_unshare_problem(support)}")
        return _unshare_argv(support, argv, network=network, switch=switch, limit=limit)
    if support.bwrap is None:
        raise RunError(
            f"isolation unavailable: bwrap not found (searched $PATH and {_SEARCH_PATH})"
        )
    job, result = _abs(job_dir), _abs(result_dir)
    model = _abs(model_path)
    ro = [_abs(p) for p in (*read_only, *([data_dir] if data_dir is not None else []))]
    roots = _python_roots(_abs(interpreter))
    if argv and os.path.isabs(argv[0]):
        roots += _python_roots(argv[0])
    for path in [job, result, *ro, *([] if model_fd is not None else [model])]:
        if not os.path.exists(path):
            raise RunError(f"cannot isolate the job: {path} does not exist")
    for path in [*roots, _PACKAGE_DIR, *ro]:
        if _within(job, path) or _within(result, path):
            raise RunError(
                f"cannot isolate the job: read-only path {path} contains its folder {job}"
            )
    mounts = _base_mounts(support, tmp_size_mb, shm_size_mb)
    mounts += [
        (p, ("--ro-bind", os.path.realpath(p), p)) for p in _outermost([*roots, _PACKAGE_DIR])
    ]
    mounts += [(p, ("--ro-bind", os.path.realpath(p), p)) for p in ro]
    mounts += [(job, ("--bind", os.path.realpath(job), job))]
    if result != job:
        mounts += [(result, ("--bind", os.path.realpath(result), result))]
    if model_fd is not None:
        mounts += [(model, ("--perms", "0444", "--ro-bind-data", str(model_fd), model))]
    else:
        mounts += [(model, ("--ro-bind", os.path.realpath(model), model))]
    cmd = [support.bwrap, *_bwrap_namespaces(support, network)]
    cmd += _mount_args(mounts)
    # Last: nothing can be created in the jail's own root or /dev (a user-namespace root would
    # own them: an unbounded tmpfs otherwise); /tmp and /dev/shm are mounts of their own.
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", job, "--"]
    cmd += _inner(support, switch, limit)
    return [*cmd, *argv]


def prepare_dirs(
    job_dir: PathLike, result_dir: PathLike, uid: int | None, gid: int | None = None
) -> None:
    """Create the job and result folders (mode 0700) and give them to the job uid.

    Call it before :func:`wrap` when the sandbox runs as root; with ``uid`` None (an ordinary
    user) the folders only get created. Existing content is handed over too, never following a
    symbolic link.
    """
    for folder in (job_dir, result_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    if uid is not None:
        gid = uid if gid is None else gid
        _chown_tree(job_dir, uid, gid)
        _chown_tree(result_dir, uid, gid)


def reclaim_dirs(*folders: PathLike) -> None:
    """Give folders a job wrote back to the sandbox's own uid, readable by all (job ended).

    The job uid is reused by the next job of the slot: a finished result folder must not stay
    its property. Readable, because it may be another job's ``DATA_SOURCE_DIR`` (bound
    read-only for another job uid); on the host, the closed ``jobs/`` folder above it keeps
    others out. Symbolic links the model left are changed themselves, never followed; a folder
    that was replaced by a link is left alone.
    """
    for folder in folders:
        _chown_tree(folder, os.geteuid(), os.getegid(), readable=True)


def init_pid(jail_pid: int) -> int | None:
    """The host pid of the jail's pid 1 (a child of the ``bwrap``/``unshare`` process).

    To stop a model gracefully, signal that process group: ``os.killpg(init_pid(p), SIGTERM)``
    reaches the model (bwrap's pid 1 ignores it); then SIGKILL ``p`` itself, which ends the pid
    namespace and everything in it. None when the jail is gone.
    """
    with contextlib.suppress(OSError, ValueError):
        children = Path(f"/proc/{jail_pid}/task/{jail_pid}/children").read_text().split()
        return int(children[0]) if children else None
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = Path(entry.path, "stat").read_text()
                    if int(fields.rsplit(")", 1)[1].split()[1]) == jail_pid:
                        return int(entry.name)
    return None


def returncode(rc: int, *, tool: str = "bwrap") -> int:
    """The model's status the way ``Popen`` reports an unjailed one (``-N``: killed by signal N).

    bwrap exits with 128 + N when the model dies of signal N (a model exiting with a code
    above 128 reads as a signal too, as in a shell); ``unshare`` re-raises the signal itself.
    """
    if tool == "bwrap" and 128 < rc <= 128 + 64:
        return -(rc - 128)
    return rc


def doctor_report() -> list[tuple[str, str]]:
    """What ``sandbox-kit doctor`` prints about isolation: (label, value) rows."""
    s = probe()
    how = {"namespaces": "bubblewrap", "partial": "unshare + setpriv, no filesystem view"}
    rows = [("isolation", f"{s.level} ({how[s.level]})" if s.level in how else "none")]
    if s.root:
        rows.append(("job identity", f"a dedicated uid per slot ({DEFAULT_UID_BASE} + slot)"))
    else:
        rows.append(("job identity", f"a user namespace (the sandbox runs as uid {os.geteuid()})"))
    if s.bwrap:
        rows.append(("bubblewrap", f"{s.bwrap_version or 'unknown version'} at {s.bwrap}"))
    else:
        rows.append(("bubblewrap", f"not found (searched $PATH and {_SEARCH_PATH})"))
    if s.root:
        rows.append(("user namespaces", "not needed (running as root)"))
    else:
        maxns = _read("/proc/sys/user/max_user_namespaces")
        rows.append(("user namespaces", s.userns or f"available (max_user_namespaces = {maxns})"))
    rows.append(("process limit", f"prlimit at {s.prlimit}" if s.prlimit else "none (no prlimit)"))
    if s.tool == "unshare":
        rows.append(("fallback", "unshare + setpriv: in use"))
    else:
        problem = _unshare_problem(s)
        rows.append(("fallback", f"unshare + setpriv: {problem or 'works'}"))
    if s.reasons:
        rows.append(("why not stronger", s.reason))
    return rows


# --- probing ----------------------------------------------------------------------------------


@functools.cache
def _found() -> JailSupport:
    """The tools and settings found, without a trial run (level ``none`` until one)."""
    root = os.geteuid() == 0
    bwrap = _which("bwrap")
    return JailSupport(
        level="none",
        tool=None,
        root=root,
        bwrap=bwrap,
        bwrap_version=_bwrap_version(bwrap) if bwrap else None,
        unshare=_which("unshare"),
        setpriv=_which("setpriv"),
        prlimit=_which("prlimit"),
        userns=None if root else _userns_problem(),
        reasons=(),
    )


def _which(name: str) -> str | None:
    # Not shutil.which: shutil imports the compression modules, and this runs in the
    # supervisor before the model starts.
    for folder in f"{os.environ.get('PATH', '')}:{_SEARCH_PATH}".split(":"):
        path = os.path.join(folder, name)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _userns_problem() -> str | None:
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "user namespaces are disabled (user.max_user_namespaces = 0)"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return (
            "AppArmor restricts unprivileged user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns = 1)"
        )
    return None


def _bwrap_version(bwrap: str) -> str | None:
    try:
        out = subprocess.run(
            [bwrap, "--version"],
            capture_output=True,
            text=True,
            timeout=_TRIAL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else None


def _version(text: str | None) -> tuple[int, ...]:
    parts = []
    for part in (text or "0").split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _trial(cmd: list[str]) -> str | None:
    """Run ``cmd`` (ending in ``true``); None when it worked, else its stderr's last line."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sandbox-jail-probe-") as scratch:
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_TRIAL_TIMEOUT_S,
                cwd=scratch,
                env={"PATH": _SEARCH_PATH},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"trial run failed: {exc}"
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"trial run exited with status {done.returncode}"


def _bwrap_problem(found: JailSupport) -> str | None:
    if found.bwrap is None:
        return f"bwrap not found (searched $PATH and {_SEARCH_PATH})"
    if found.root and found.setpriv is None:
        return "setpriv not found: needed to switch to the job uid when running as root"
    switch = (DEFAULT_UID_BASE, DEFAULT_UID_BASE) if found.root else None
    cmd = [found.bwrap, *_bwrap_namespaces(found, "none")]
    cmd += _mount_args(_base_mounts(found, 1, 1))
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--"]
    problem = _trial([*cmd, *_inner(found, switch, None), "true"])
    return f"{found.userns} ({problem})" if problem and found.userns else problem


def _unshare_problem(found: JailSupport) -> str | None:
    if not found.root:
        # Without a filesystem view the job would run as the sandbox's own uid and could
        # rewrite the registry: that is no isolation worth the name.
        return "needs root (as an ordinary user the job would keep the sandbox's uid)"
    if found.unshare is None or found.setpriv is None:
        names = (("unshare", found.unshare), ("setpriv", found.setpriv))
        missing = " and ".join(name for name, path in names if not path)
        return f"{missing} not found (searched $PATH and {_SEARCH_PATH})"
    switch = (DEFAULT_UID_BASE, DEFAULT_UID_BASE) if found.root else None
    problem = _trial(_unshare_argv(found, ["true"], network="none", switch=switch, limit=None))
    return f"{found.userns} ({problem})" if problem and found.userns else problem


# --- command lines ----------------------------------------------------------------------------


def _bwrap_namespaces(support: JailSupport, network: str) -> list[str]:
    args = []
    if not support.root:
        args.append("--unshare-user")
        if _version(support.bwrap_version) >= _MIN_DISABLE_USERNS:
            args.append("--disable-userns")  # no nested user namespace: less kernel exposed
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if network == "none":
        args.append("--unshare-net")
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if support.root:
        # Only what is needed until setpriv becomes the job uid, which clears them all: enter
        # the job uid's 0700 folder (--chdir), change uid and groups, empty the bounding set.
        for cap in ("CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
            args += ["--cap-add", cap]
    return args


def _inner(support: JailSupport, switch: tuple[int, int] | None, limit: str | None) -> list[str]:
    """What runs between bwrap and the model: the uid switch (root) and the process limit."""
    inner = []
    if switch is not None:
        uid, gid = switch
        inner += [
            support.setpriv or "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    if limit is not None:
        inner += [support.prlimit or "prlimit", limit, "--"]
    return inner


def _prlimit(support: JailSupport, max_procs: int | None) -> str | None:
    if not max_procs:
        return None
    if support.prlimit is None:
        raise RunError("cannot limit the job's processes: prlimit (util-linux) not found")
    return f"--nproc={max_procs}:{max_procs}"


def _unshare_argv(
    support: JailSupport,
    argv: Sequence[str],
    *,
    network: str,
    switch: tuple[int, int] | None,
    limit: str | None,
) -> list[str]:
    if support.unshare is None or support.setpriv is None:
        raise RunError(f"isolation unavailable: unshare or setpriv not found ({_SEARCH_PATH})")
    # setpriv first: unshare dies with the supervisor, and --kill-child then ends the namespace.
    cmd = [support.setpriv, "--pdeathsig", "KILL", "--", support.unshare]
    if not support.root:
        cmd += ["--user", "--map-current-user"]
    cmd += ["--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts"]
    if network == "none":
        cmd.append("--net")
    cmd += ["--", support.setpriv]
    if switch is not None:
        uid, gid = switch
        cmd += [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        cmd += ["--inh-caps=-all", "--bounding-set=-all"]
    # Changing uid clears the parent-death signal unshare set: set it again after the switch.
    cmd += ["--no-new-privs", "--pdeathsig", "KILL", "--"]
    if limit is not None:
        cmd += [support.prlimit or "prlimit", limit, "--"]
    return [*cmd, *argv]


def _base_mounts(
    support: JailSupport, tmp_size_mb: int, shm_size_mb: int
) -> list[tuple[str, tuple[str, ...]]]:
    mounts: list[tuple[str, tuple[str, ...]]] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.append((path, ("--symlink", os.readlink(path), path)))
        elif os.path.isdir(path):
            mounts.append((path, ("--ro-bind", path, path)))
    for name in _ETC:
        path = f"/etc/{name}"
        if os.path.exists(path):
            mounts.append((path, ("--ro-bind", os.path.realpath(path), path)))
    sized = _version(support.bwrap_version) >= _MIN_SIZE
    for path, size in (("/tmp", tmp_size_mb), ("/dev/shm", shm_size_mb)):
        limit = ("--size", str(size * 1024 * 1024)) if sized else ()
        mounts.append((path, ("--perms", "1777", *limit, "--tmpfs", path)))
    mounts += [("/proc", ("--proc", "/proc")), ("/dev", ("--dev", "/dev"))]
    return mounts


def _mount_args(mounts: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """bwrap arguments for ``mounts`` (destination, args): parents first, and every directory
    that has to be made to hold a destination created root-owned ``0755`` (bwrap's own are
    ``0700``, which a job uid could not traverse)."""
    args: list[str] = []
    binds: list[str] = []  # destinations whose host content shows inside
    made: set[str] = {"/"}
    for dest, op in sorted(mounts, key=lambda m: (m[0].count("/"), m[0])):
        for parent in _ancestors(dest):
            if parent in made or any(_within(parent, b) for b in binds):
                continue
            args += ["--perms", "0755", "--dir", parent]
            made.add(parent)
        args += op
        made.add(dest)
        if op[0] in ("--ro-bind", "--bind") and os.path.isdir(dest):
            binds.append(dest)
    return args


# --- paths ------------------------------------------------------------------------------------


def _abs(path: PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it (textually)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _outermost(paths: Iterable[str]) -> list[str]:
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(_within(path, k) for k in kept):
            kept.append(path)
    return kept


def _system(path: str) -> bool:
    """Visible through the system directories already (or the root itself)."""
    return path == "/" or any(_within(path, d) for d in _SYSTEM_DIRS)


def _python_roots(interpreter: str) -> list[str]:
    """The folders an interpreter needs: its prefix, its venv and the Python the venv uses.

    Follows the chain of symbolic links (a venv's ``python`` -> ``/root/.pyenv/.../python3``
    -> ``python3.11``) and reads ``pyvenv.cfg``, without running the interpreter. Each folder
    is kept at the path the chain names it by, which is where Python will look inside.
    """
    hops = [interpreter]
    for _ in range(40):
        try:
            target = os.readlink(hops[-1])
        except OSError:
            break
        hops.append(os.path.normpath(os.path.join(os.path.dirname(hops[-1]), target)))
    hops.append(os.path.realpath(interpreter))
    roots: list[str] = []
    for hop in hops:
        folder = os.path.dirname(hop)
        roots.append(os.path.dirname(folder) if os.path.basename(folder) == "bin" else folder)
        for venv in (folder, os.path.dirname(folder)):
            home = _venv_home(os.path.join(venv, "pyvenv.cfg"))
            if home is not None:
                roots.append(venv)
                base = home.rstrip("/")
                if os.path.basename(base) == "bin":
                    base = os.path.dirname(base)
                roots += [base, os.path.realpath(base)]
    return _outermost(r for r in roots if not _system(r) and os.path.isdir(r))


def _venv_home(cfg: str) -> str | None:
    try:
        lines = Path(cfg).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return value.strip()
    return None


def _chown_tree(top: PathLike, uid: int, gid: int, *, readable: bool = False) -> None:
    top = os.fspath(top)
    if os.path.islink(top) or not os.path.isdir(top):
        return
    paths = [top]
    for folder, dirs, files in os.walk(top, followlinks=False):
        paths += [os.path.join(folder, name) for name in (*dirs, *files)]
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, uid, gid, follow_symlinks=False)
            mode = os.lstat(path).st_mode
            if readable and stat.S_ISDIR(mode):
                os.chmod(path, mode | 0o055)
            elif readable and stat.S_ISREG(mode):
                # Never a setuid or setgid file of the sandbox's own (chown clears them too).
                os.chmod(path, (mode | 0o044) & ~(stat.S_ISUID | stat.S_ISGID))
