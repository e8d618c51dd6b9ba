"""The job supervisor: one small process per job that runs the model and records its end.

Started detached (own session) by :mod:`sandbox_kit.launcher`, it outlives whoever pressed Run.
It reads its run spec as JSON on stdin, starts the model at once (before importing the database
layer, so the first line is not delayed), then:

- copies every byte of the model's stdout and stderr into the durable log (:mod:`logs`);
- writes a heartbeat every few seconds and picks up cancel requests;
- enforces the wall-clock timeout;
- on the end, kills whatever is left of the process tree (it is a child subreaper, so
  grandchildren that escaped with ``setsid`` are re-parented to it and cannot hide), reaps
  every zombie, records exactly one terminal status, and starts the next queued jobs.

A supervisor that dies leaves a stale heartbeat; reconciliation then marks its job ``lost``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sandbox_kit.logs import LogWriter

_PR_SET_CHILD_SUBREAPER = 36
_READ_SIZE = 1 << 16


class Supervisor:
    """Runs one job described by ``spec`` (see :func:`sandbox_kit.launcher.build_spec`)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.job_id: str = spec["job_id"]
        self.stop_cause: str | None = None  # "cancel" | "timeout" | "signal"
        self._signalled = False
        self._connected = threading.Event()
        self.store: Any = None
        self.log = LogWriter(spec["log_path"], spec["log_cap"])
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Run the job to its end; the return value is the supervisor's exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _become_subreaper()
        started = time.time()
        error = self._start()
        # The database layer takes a few hundred ms to import: connect in a thread while the
        # main loop already copies the model's first lines to the log.
        connecting = threading.Thread(target=self._connect, args=(started,), daemon=True)
        connecting.start()
        if error is not None:
            self.log.note(error, _ms(), b"E")
            self.log.close(_ms())
            connecting.join()
            self.store.finish(self.job_id, "failed", reason=error, truncated=False)
            self._dispatch_next()
            return 0
        rc = self._pump(started)
        connecting.join()
        status, reason = self._verdict(rc, started)
        if reason and status != "success":
            self.log.note(f"job {status}: {reason}", _ms(), b"E" if status == "failed" else b"W")
        self.log.close(_ms())
        _make_read_only(Path(self.spec["result_dir"]))
        self.store.finish(
            self.job_id,
            status,
            reason=reason,
            truncated=self.log.truncated,
            exit_code=rc if rc >= 0 else None,
            signal=-rc if rc < 0 else None,
            result_dir=self.spec["result_dir"],
        )
        self._dispatch_next()
        return 0

    def _connect(self, started: float) -> None:
        from sandbox_kit import jobstore

        self.store = jobstore.JobStore(self.spec["db_url"])
        if self.proc is not None:
            self.store.mark_started(
                self.job_id,
                started=started,
                model_pid=self.proc.pid,
                model_started=_create_time(self.proc.pid),
                python_version=self.spec["python_version"],
            )
        self._connected.set()

    def _start(self) -> str | None:
        spec = self.spec
        interpreter = spec["interpreter"]
        if not (os.path.isfile(interpreter) and os.access(interpreter, os.X_OK)):
            return f"interpreter not found or not executable: {interpreter}"
        if not os.path.isfile(spec["model_path"]):
            return f"model file is missing: {spec['model_path']}"
        launcher = str(Path(__file__).with_name("rlimit_exec.py"))
        limits = [str(v or 0) for v in spec["limits"]]
        cmd = [
            sys.executable,
            "-I",
            "-S",
            launcher,
            *limits,
            "--",
            interpreter,
            "-u",
            spec["model_path"],
        ]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=spec["job_dir"],
                env=spec["env"],
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return f"cannot start the model: {exc}"
        return None

    def _pump(self, started: float) -> int:
        """Copy output until the model exits (or is stopped); return its wait status."""
        assert self.proc is not None and self.proc.stdout and self.proc.stderr
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout.fileno(), selectors.EVENT_READ, b"o")
        sel.register(self.proc.stderr.fileno(), selectors.EVENT_READ, b"e")
        timeout = self.spec["timeout_s"]
        deadline = started + timeout if timeout else None
        beat_every = self.spec["heartbeat_s"]
        next_beat = time.monotonic()  # first heartbeat as soon as connected: picks up a cancel
        rc: int | None = None
        while sel.get_map():
            for key, _ in sel.select(timeout=0.2):
                chunk = os.read(key.fd, _READ_SIZE)
                if chunk:
                    self.log.feed(key.data, chunk, _ms())
                else:
                    sel.unregister(key.fd)
            if rc is None and (rc := self.proc.poll()) is not None:
                # The model is gone; whatever it left running must not keep the pipes open.
                self._kill_tree(grace=0)
            if self.stop_cause is None and deadline is not None and time.time() > deadline:
                self.stop_cause = "timeout"
            if self._connected.is_set() and (self._signalled or time.monotonic() >= next_beat):
                next_beat = time.monotonic() + beat_every
                cancel = self.store.heartbeat(self.job_id)
                if self.stop_cause is None and (cancel or self._signalled):
                    # cancel() in another process flags the row first, then signals us.
                    self.stop_cause = "cancel" if cancel else "signal"
            if self.stop_cause is not None and rc is None:
                self._kill_tree(grace=self.spec["kill_grace_s"])
                rc = self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        if rc is None:
            rc = self.proc.wait()
        self._kill_tree(grace=0)
        return rc

    def _kill_tree(self, grace: float) -> None:
        """SIGTERM every descendant, SIGKILL what is left after ``grace``, reap them all."""
        import psutil

        me = psutil.Process()
        assert self.proc is not None
        sig = signal.SIGTERM if grace > 0 else signal.SIGKILL
        deadline = time.monotonic() + grace
        give_up = deadline + 10  # a process stuck in the kernel (D state) cannot be waited out
        while time.monotonic() < give_up:
            procs = me.children(recursive=True)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            _reap_adopted(self.proc.pid)
            if self.proc.poll() is not None and not _living(me.children(recursive=True)):
                return
            if sig == signal.SIGTERM and time.monotonic() >= deadline:
                sig = signal.SIGKILL
            time.sleep(0.05)

    def _verdict(self, rc: int, started: float) -> tuple[str, str | None]:
        if self.stop_cause == "cancel":
            return "cancelled", "killed by cancel"
        if self.stop_cause == "timeout":
            return "timeout", f"wall-clock timeout after {self.spec['timeout_s']:g} s"
        if self.stop_cause == "signal":
            return "cancelled", "supervisor was asked to stop (SIGTERM)"
        if rc == 0:
            return "success", None
        limit = _limit_reason(rc, self.log.stderr_tail, self.spec["limits"])
        if limit:
            return "failed", limit
        if rc < 0:
            return "failed", f"killed by signal {_signame(-rc)}"
        return "failed", f"exit code {rc}"

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only a flag: the database is not touched from a signal handler.
        self._signalled = True

    def _dispatch_next(self) -> None:
        from sandbox_kit import launcher

        with contextlib.suppress(Exception):
            launcher.dispatch(self.store.db, self.spec["queue"])


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


def _become_subreaper() -> None:
    # Orphaned descendants (a grandchild that called setsid() and whose parent exited) are
    # re-parented to us instead of init, so the tree can always be found and killed.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_adopted(model_pid: int) -> None:
    import psutil

    for child in psutil.Process().children():
        if child.pid == model_pid:
            continue  # Popen reaps the model itself, so its exit code is not lost
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(child.pid, os.WNOHANG)


def _living(procs: list[Any]) -> bool:
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _make_read_only(folder: Path) -> None:
    # A finished job's results are an input to later runs (DATA_SOURCE_DIR); freeze them.
    if not folder.is_dir():
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
    """Entry point: ``python -m sandbox_kit.supervisor`` with the spec as JSON on stdin."""
    spec = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    return Supervisor(spec).run()


if __name__ == "__main__":
    sys.exit(main())
