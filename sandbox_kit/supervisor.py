"""The job supervisor: one small process per job that runs the model and records its end.

Started detached (own session) by :mod:`sandbox_kit.executor`, it outlives whoever pressed
Run. It reads its run spec as JSON on stdin and starts the model at once. Then:

- the main thread copies every byte of the model's stdout and stderr into the durable log
  (:mod:`sandbox_kit.logs`) and acts on *deadlines*, not on pipe EOF: the timeout (monotonic
  clock), a cancel, the end of the model (a pidfd wakes it) and the escalation from SIGTERM
  to SIGKILL fire on time whatever the model does with its descriptors (issue 9);
- a registrar thread talks to the database: it records the start, writes a heartbeat every
  few seconds and picks up cancel requests, retrying with backoff through an outage, so a
  locked or unreachable database never stops the main loop;
- at the end it kills whatever is left of the process tree (it is a child subreaper, so
  grandchildren that escaped with ``setsid`` are re-parented to it and cannot hide), reaps
  every zombie, reads the model's result within limits, records exactly one terminal status
  (retrying until the database is back) and starts the next queued jobs.

A supervisor that dies leaves a stale heartbeat; reconciliation then marks its job ``lost``.

On a Dask worker (``spec["remote"]``, issue 12) the same supervisor also ships its log into
the registry as it is written (:mod:`sandbox_kit.logship`), uploads the result folder to the
store before it records the end, fences its writes with the job's attempt, and watches the
pipe from its worker: when the worker dies it stops the model and records the attempt lost.
It imports neither SQLAlchemy nor widget code (a test checks), so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox_kit import proctree
from sandbox_kit.errors import SandboxKitError
from sandbox_kit.logs import LogWriter
from sandbox_kit.registrar import Registrar

_READ_SIZE = 1 << 16
_TICK_S = 0.25  # longest the main loop sleeps without looking at its deadlines
_DRAIN_S = 2.0  # after the model ended: how long output of killed leftovers is still read
_UNKILLABLE_S = 10.0  # a process stuck in the kernel (D state) cannot be waited out


class Supervisor:
    """Runs one job described by ``spec`` (see :func:`sandbox_kit.launcher.submit`)."""

    def __init__(self, spec: dict[str, Any], *, chain: bool = False) -> None:
        self.spec = spec
        self.job_id: str = spec["job_id"]
        self.stop_cause: str | None = None  # "cancel" | "timeout" | "signal"
        self._stop_signalled = False  # SIGTERM/SIGINT: stop now
        self._poked = False  # SIGUSR1: a cancel may be pending, ask the registry at once
        self.chain = chain
        #: With ``chain``, the next claimed job this process should run itself (see main()).
        self.next_spec: dict[str, Any] | None = None
        self.log = LogWriter(spec["log_path"], spec["log_cap"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.registrar = Registrar(self)
        self.oplog = _oplog(spec)
        #: ``namespaces`` (bubblewrap), ``partial`` (unshare) or ``none``; recorded per job.
        self.isolation = "none"
        self._jail_tool: str | None = None
        #: The attempt it runs (fences every write of this supervisor); on a Dask worker also
        #: the worker and the store.
        self.remote: dict[str, Any] | None = spec.get("remote")
        self.attempt: int | None = spec.get("attempt")
        self._worker_lost = False
        self._shipper: Any = None

    def watch_worker(self, fd: int, pending: bytes = b"") -> None:
        """Watch the pipe (``fd``) from the Dask worker that started this supervisor: its end
        without a ``detach`` first means the worker died, and the model must stop."""

        def watch() -> None:
            seen = pending
            while b"detach" not in seen:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self._worker_lost = True
                    return
                seen = seen[-8:] + chunk
            # An orderly close: run on and record the end.

        threading.Thread(target=watch, name="worker-watch", daemon=True).start()

    def run(self) -> int:
        """Run the job to its end; the return value is the supervisor's exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGUSR1, self._on_signal)  # sent by cancel(): look at the flag
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        proctree.become_subreaper()
        if self.remote is not None:
            from sandbox_kit.dbapi import Connection
            from sandbox_kit.logship import LogShipper

            conn = Connection(self.spec["db_url"], name=f"sandbox-kit log {self.job_id}")
            self._shipper = LogShipper(
                conn, self.job_id, self.remote["attempt"], self.spec["log_path"]
            )
            self._shipper.start()
        started = datetime.now(UTC)
        error = self._start()
        self.registrar.start(started)
        if error is not None:
            self.log.note(error, _ms(), b"E")
            self.log.close(_ms())
            self._record("failed", reason=error, truncated=False)
            return 0
        rc = self._pump()
        status, reason = self._verdict(rc)
        values = self._result_values()
        unreadable = values.pop("error", None)
        if reason and status != "success":
            self.log.note(f"job {status}: {reason}", _ms(), b"E" if status == "failed" else b"W")
        self.log.close(_ms())
        if self._jail_tool is not None:
            from sandbox_kit import jail

            # Back to the sandbox's uid before anything is read or frozen (issue 8).
            jail.reclaim_dirs(self.spec["job_dir"], self.spec["result_dir"])
        _make_read_only(Path(self.spec["result_dir"]))
        self._record(
            status,
            reason=reason or unreadable,
            truncated=self.log.truncated,
            exit_code=rc if rc >= 0 else None,
            signal=-rc if rc < 0 else None,
            **values,
        )
        return 0

    # -- the model ------------------------------------------------------------------------

    def _start(self) -> str | None:
        """Start the model (jailed unless isolation is off); returns why it could not start."""
        spec = self.spec
        secrets = _take_secrets(spec)  # first: the file goes whatever happens next
        interpreter = spec["interpreter"]
        if not (os.path.isfile(interpreter) and os.access(interpreter, os.X_OK)):
            return f"interpreter not found or not executable: {interpreter}"
        try:
            model_fd = os.open(spec["model_path"], os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return f"model file is missing: {spec['model_path']}"
        try:
            problem = _check_model(model_fd, spec.get("model_sha256"))
            if problem is not None:
                return problem
            env = {**spec["env"], **secrets, **thread_env(spec.get("threads", 1))}
            launcher = str(Path(__file__).with_name("rlimit_exec.py"))
            limits = [str(v or 0) for v in spec["limits"]]
            # abspath: a "../" in the path would not resolve inside the jail's filesystem view.
            cmd = [os.path.abspath(sys.executable), "-I", "-S", launcher, *limits, "--"]
            if spec["model_path"].endswith(".ipynb"):  # a notebook model (issue 14)
                runner = str(Path(__file__).with_name("notebook_runner.py"))
                cmd += [interpreter, "-u", runner, spec["model_path"]]
            else:
                cmd += [interpreter, "-u", spec["model_path"]]
            cmd, problem = self._jail(cmd, model_fd)
            if problem is not None:
                return problem
            try:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=spec["job_dir"],
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(model_fd,) if self.isolation != "none" else (),
                )
            except OSError as exc:
                return f"cannot start the model: {exc}"
            return None
        finally:
            os.close(model_fd)

    def _jail(self, cmd: list[str], model_fd: int) -> tuple[list[str], str | None]:
        """Wrap the model's command in the jail the spec asks for (issue 8)."""
        spec = self.spec
        mode = spec.get("isolation", "auto")
        if mode == "off":
            return cmd, None
        from sandbox_kit import jail

        tool: str | None = spec.get("jail_tool")
        if tool is None:  # the dispatcher found none: look again, and say why
            tool = jail.probe().tool
            if tool is None:
                if mode == "required":
                    return cmd, f"isolation unavailable: {jail.probe().reason}"
                return cmd, None
        support = jail.support(tool)
        uid = (
            jail.slot_uid(spec.get("slot", 0), base=spec["job_uid_base"]) if support.root else None
        )
        try:
            jail.prepare_dirs(spec["job_dir"], spec["result_dir"], uid)
            wrapped = jail.wrap(
                cmd,
                job_dir=spec["job_dir"],
                result_dir=spec["result_dir"],
                model_path=spec["model_path"],
                interpreter=spec["interpreter"],
                data_dir=spec["env"].get("DATA_SOURCE_DIR"),
                network=spec.get("network", "none"),
                uid=uid,
                max_procs=spec.get("max_processes") or None,
                model_fd=model_fd,
                tool=tool,
            )
        except (OSError, ValueError, SandboxKitError) as exc:
            # The machine can isolate, but not this job (e.g. its data source vanished): never
            # fall back to running it unjailed, in any mode.
            why = str(exc) if isinstance(exc, SandboxKitError) else f"cannot isolate the job: {exc}"
            return cmd, why
        self.isolation = support.level
        self._jail_tool = support.tool
        return wrapped, None

    def _pump(self) -> int:
        """Copy output and act on deadlines until the model and its tree are gone."""
        proc = self.proc
        assert proc is not None and proc.stdout and proc.stderr
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, b"o")
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ, b"e")
        pidfd = proctree.pidfd(proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, b"p")  # readable once the model exits
        begun = time.monotonic()
        timeout = self.spec["timeout_s"]
        deadline = begun + timeout if timeout else None
        rc: int | None = None
        kill_at: float | None = None  # when SIGTERM turns into SIGKILL
        tree_gone = False
        ended_at: float | None = None  # when the model was gone and its leftovers were killed
        while True:
            now = time.monotonic()
            killing = ended_at is not None or (kill_at is not None and now >= kill_at)
            wait = 0.05 if killing else _TICK_S
            if deadline is not None and self.stop_cause is None:
                wait = min(wait, max(0.0, deadline - now))
            if kill_at is not None and now < kill_at:
                wait = min(wait, kill_at - now)
            for key, _ in sel.select(timeout=wait):
                if key.data == b"p":
                    sel.unregister(key.fd)
                    continue
                chunk = os.read(key.fd, _READ_SIZE)
                if chunk:
                    self.log.feed(key.data, chunk, _ms())
                else:
                    sel.unregister(key.fd)
            now = time.monotonic()
            if rc is None:
                rc = proc.poll()
            if self._poked:
                self._poked = False
                self.registrar.poke()
            if rc is None and self.stop_cause is None:
                if self._stop_signalled:
                    self.stop_cause = "signal"
                elif self.registrar.cancel.is_set():
                    self.stop_cause = "cancel"
                elif self.registrar.gone.is_set():
                    self.stop_cause = "gone"
                elif self._worker_lost:
                    self.stop_cause = "worker"
                if self.stop_cause is None and deadline is not None and now >= deadline:
                    self.stop_cause = "timeout"
                if self.stop_cause is not None:
                    self._note_stop()
                    self._signal_tree(signal.SIGTERM)
                    kill_at = now + self.spec["kill_grace_s"]
            if rc is not None and ended_at is None:
                ended_at = now  # the model is gone: what it left running must not linger
            if not tree_gone and (ended_at is not None or (kill_at is not None and now >= kill_at)):
                since = ended_at if ended_at is not None else kill_at
                assert since is not None
                alive = self._signal_tree(signal.SIGKILL)
                tree_gone = rc is not None and not alive
                if alive and now - since < _UNKILLABLE_S:
                    continue  # something still lives: keep killing (and reading) until it dies
            if ended_at is not None and (
                not any(k.data in (b"o", b"e") for k in sel.get_map().values())
                or now - ended_at >= _DRAIN_S
            ):
                break
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
        assert rc is not None
        if self._jail_tool is not None:
            from sandbox_kit import jail

            return jail.returncode(rc, tool=self._jail_tool)
        return rc

    def _note_stop(self) -> None:
        """Tell the model why it is being stopped, before SIGTERM (``model_api.stop_reason``).

        A model that saves its best solution on SIGTERM reports ``time_limit`` after a timeout
        and ``interrupted`` after a cancel (issue 15); the signal alone cannot say which.
        """
        from sandbox_kit.model_api import STOP_FILE

        reason = "timeout" if self.stop_cause == "timeout" else "cancel"
        path = Path(self.spec["job_dir"]) / STOP_FILE
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)  # never write through a link the model left there
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(reason + "\n")

    def _signal_tree(self, sig: int) -> bool:
        """Send ``sig`` to every descendant, reap adopted zombies; True if any still lives.

        In a jail, SIGTERM spares the jail's own processes (bwrap and its pid 1): killing them
        ends the pid namespace at once, which is what SIGKILL is for, not the grace period.
        """
        import psutil

        assert self.proc is not None
        me = psutil.Process()
        spared: set[int | None] = set()
        if self._jail_tool == "bwrap" and sig == signal.SIGTERM:
            # Under unshare the jail's pid 1 is the model itself: it must get the SIGTERM.
            from sandbox_kit import jail

            spared = {self.proc.pid, jail.init_pid(self.proc.pid)}
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
        for child in proctree.tree(me):
            if child.pid not in spared:
                with contextlib.suppress(psutil.Error):
                    child.send_signal(sig)
        proctree.reap_adopted(self.proc.pid)
        return proctree.living(proctree.tree(me))

    def _verdict(self, rc: int) -> tuple[str, str | None]:
        if self.stop_cause == "cancel":
            return "cancelled", "killed by cancel"
        if self.stop_cause == "timeout":
            return "timeout", f"wall-clock timeout after {self.spec['timeout_s']:g} s"
        if self.stop_cause == "signal":
            return "cancelled", "supervisor was asked to stop (SIGTERM)"
        if self.stop_cause == "worker":
            assert self.remote is not None
            return "lost", f"worker {self.remote['worker']} died"
        if self.stop_cause == "gone":  # not recorded: the job already has its end
            return "cancelled", "the job was ended elsewhere (e.g. marked lost); model stopped"
        if rc == 0:
            return "success", None
        limit = _limit_reason(rc, self.log.stderr_tail, self.spec["limits"])
        if limit:
            return "failed", limit
        if rc < 0:
            return "failed", f"killed by signal {_signame(-rc)}"
        if rc == 1 and self.spec["model_path"].endswith(".ipynb"):
            # notebook_runner.py's last stderr line names the failing cell and the error.
            for line in reversed(self.log.stderr_tail.decode("utf-8", "replace").splitlines()):
                if line.startswith("notebook cell "):
                    return "failed", line.removeprefix("notebook ")
        return "failed", f"exit code {rc}"

    def _result_values(self) -> dict[str, Any]:
        """Outcome, objective and metrics from ``result.json``, read within the limits."""
        from sandbox_kit.results import summarize

        if Path(self.spec["result_dir"]).is_symlink():
            self.log.note("result not used: the result folder was replaced by a link", _ms(), b"W")
            return {"error": "unreadable result: the result folder was replaced by a link"}
        found = summarize(
            self.spec["result_dir"],
            max_bytes=self.spec.get("result_max_bytes", 1 << 20),
            max_metrics=self.spec.get("max_metrics", 200),
        )
        for warning in found.warnings:
            self.log.note(warning, _ms(), b"W")
        values: dict[str, Any] = {
            "outcome": found.outcome,
            "objective": found.objective,
            "metrics": found.metrics,
        }
        if found.error:
            self.log.note(f"result not used: {found.error}", _ms(), b"W")
            values["error"] = f"unreadable result: {found.error}"
        return values

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only flags: the main loop acts on them within one tick. SIGUSR1 only says "look at
        # the cancel flag now" (the registry decides), so a late signal meant for an earlier
        # job of this process cannot cancel the current one.
        if signum == signal.SIGUSR1:
            self._poked = True
        else:
            self._stop_signalled = True

    # -- the registry ---------------------------------------------------------------------

    def _record(self, status: str, **values: Any) -> None:
        """Record the verdict (retrying through an outage), then start the next jobs."""
        from sandbox_kit.dbapi import TransientError, retry
        from sandbox_kit.executor import dispatch

        self.registrar.stop()
        lifecycle = self.registrar.lifecycle()
        if not self.registrar.announced and self.proc is not None:
            # A model that ended before its first heartbeat: still record where and how it ran.
            with contextlib.suppress(TransientError):
                retry(lambda: self.registrar.announce(lifecycle), give_up_after_s=30.0)

        def warn(exc: Exception, delay: float) -> None:
            self.oplog.warning(
                "job %s: cannot record %s yet (%s); retrying", self.job_id, status, exc
            )

        if self.remote is not None:
            status, values = self._hand_back(status, values)

        def end() -> bool:
            if status == "lost":  # the worker died: queued again if retries are left
                return bool(
                    lifecycle.mark_lost(self.job_id, values["reason"], attempt=self.attempt)
                )
            return bool(lifecycle.finish(self.job_id, status, attempt=self.attempt, **values))

        try:
            retry(end, give_up_after_s=self.spec.get("db_retry_s", 3600.0), on_error=warn)
        except TransientError as exc:
            self.oplog.error("job %s: gave up recording %s: %s", self.job_id, status, exc)
            return
        if not self.spec["queue"]:
            return  # on a Dask worker the task starts the next jobs
        # A supervisor asked to stop (SIGTERM) starts the next jobs as new processes rather
        # than running one itself.
        chain = self.chain and not self._stop_signalled
        kept = dispatch(lifecycle, self.spec["queue"], log=self.oplog, keep_one=chain).kept
        if kept is not None:
            self.next_spec = {**kept.spec, "db_url": self.spec["db_url"]}

    def _hand_back(self, status: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """On a Dask worker: the results to the store, the last of the log to the registry,
        before the end is recorded (a follower that sees the end has every line)."""
        from sandbox_kit.dbapi import TransientError

        assert self.remote is not None
        # Not for an attempt that is over (lost, or ended elsewhere): its results are not the
        # job's; and an attempt writes under its own key, never over a newer one's.
        if status != "lost" and self.stop_cause != "gone":
            from sandbox_kit.store import Store, result_key

            try:
                Store(self.remote["store"]).put_dir(
                    Path(self.spec["result_dir"]), result_key(self.job_id, self.remote["attempt"])
                )
            except Exception as exc:
                status, values = "failed", {**values, "reason": f"results not stored: {exc}"}
                self.oplog.error("job %s: %s", self.job_id, values["reason"])
        try:
            self._shipper.close(give_up_after_s=self.spec.get("db_retry_s", 3600.0))
        except TransientError as exc:
            self.oplog.error("job %s: log not shipped in full: %s", self.job_id, exc)
        finally:
            self._shipper.conn.close()
        return status, values


def _check_model(fd: int, expected: str | None) -> str | None:
    """Refuse a stored model whose bytes are not the ones the registry vouched for."""
    if not expected:
        return None
    digest = hashlib.sha256()
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
    found = digest.hexdigest()
    os.lseek(fd, 0, os.SEEK_SET)
    if found != expected:
        return f"model file changed since upload: expected {expected}, found {found}"
    return None


#: What the model's numeric libraries read for their thread count; ``SANDBOX_THREADS`` is
#: ours, for solvers with an option of their own (HiGHS ``threads``, Gurobi ``Threads``).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "SANDBOX_THREADS",
)


def thread_env(threads: int) -> dict[str, str]:
    """The environment that caps a model's threads at the CPU slots its job got (issue 15)."""
    return dict.fromkeys(THREAD_VARIABLES, str(max(1, int(threads))))


def _take_secrets(spec: dict[str, Any]) -> dict[str, str]:
    """The allow-listed environment values left for this job (read once, then deleted)."""
    from sandbox_kit.config import secrets_path

    path = secrets_path(Path(spec["job_dir"]).parent, spec["job_id"])
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    path.unlink(missing_ok=True)
    return {str(k): str(v) for k, v in values.items()}


def _oplog(spec: dict[str, Any]) -> logging.Logger:
    from sandbox_kit.oplog import logger

    # stderr is the job folder's supervisor.log, kept beside the job.
    return logger(spec.get("home"), stderr=True)


def _limit_reason(rc: int, stderr_tail: bytes, limits: list[int | None]) -> str | None:
    memory, cpu, fsize, nofile = limits
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu and b"CPU" in stderr_tail):
        return f"CPU time limit ({cpu} s)"
    if rc == -signal.SIGXFSZ or b"File too large" in stderr_tail:
        return f"file size limit ({fsize} bytes)"
    if b"MemoryError" in stderr_tail or b"std::bad_alloc" in stderr_tail:
        return f"memory limit ({(memory or 0) // (1024 * 1024)} MiB)"
    if b"Too many open files" in stderr_tail:
        return f"open files limit ({nofile})"
    return None


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _make_read_only(folder: Path) -> None:
    # A finished job's results are an input to later runs (DATA_SOURCE_DIR); freeze them.
    # A result folder the model replaced by a link is not followed (it may point anywhere).
    if folder.is_symlink() or not folder.is_dir():
        return
    for path in [*folder.rglob("*"), folder]:
        if path.is_symlink():
            continue  # never touch what a link points at: it may be outside the folder
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode
            path.chmod(mode & ~0o222)


def _ms() -> int:
    return int(time.time() * 1000)


def main() -> int:
    """Entry point: ``python -m sandbox_kit.supervisor`` with the spec as JSON on stdin.

    When a job ends and a queued one is waiting, this process claims it and runs it itself
    instead of starting a new supervisor: the slot passes on within milliseconds (issue 9,
    "light per-job cost"). Each job still gets a fresh :class:`Supervisor`, its own log and
    its own ``supervisor.log``.
    """
    # One line: the local executor then closes the pipe; a Dask worker keeps it open (its
    # end, without a "detach" first, says the worker died).
    line, rest = _read_line(0)
    spec: dict[str, Any] | None = json.loads(line)
    assert spec is not None
    if spec.get("remote") is None:
        os.close(0)
    while spec is not None:
        supervisor = Supervisor(spec, chain=spec.get("remote") is None)
        if supervisor.remote is not None:
            supervisor.watch_worker(0, rest)
        supervisor.run()
        spec = supervisor.next_spec
        if spec is not None:
            _adopt(spec)
    return 0


def _read_line(fd: int) -> tuple[bytes, bytes]:
    """The first line on ``fd`` (up to EOF if it has no newline), and what came after it.

    Unbuffered (``os.read``): a thread that later watches the same pipe must not share a
    buffered reader with the interpreter's shutdown.
    """
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def _adopt(spec: dict[str, Any]) -> None:
    """Make this process the supervisor of a job it claimed: its folder, its error file.

    Its pid reaches the registry with the job's first heartbeat (``Lifecycle.started``).
    """
    job_dir = Path(spec["job_dir"])
    job_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(job_dir)
    fd = os.open(job_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
