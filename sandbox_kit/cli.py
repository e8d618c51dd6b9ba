"""The ``sandbox-kit`` command line (also ``python -m sandbox_kit``).

Errors print ``Error: <sentence>`` on stderr and exit 1; usage errors exit 2; no traceback
unless ``--debug``. ``--home`` wins over ``$SANDBOX_HOME``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.humanize import duration, size, when
from sandbox_kit.records import (
    JobInfo,
    JobStatus,
    LogLine,
    Model,
    ModelStatus,
    ModelType,
    parse_config,
)

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

TYPES = [t.value for t in ModelType]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except SandboxKitError as exc:
        if args.debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError) as exc:
        # Not ours (a missing file, a full disk): still no traceback by default.
        if args.debug:
            raise
        print(f"Error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The job (if any) goes on: it does not belong to this process.
        print("Interrupted; running jobs keep running.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        # An unreachable database is reported when the sandbox opens (a DatabaseError); this
        # covers one that fails later, mid-command (issue 9). Anything else is a bug: traceback.
        reason = _database_failure(exc)
        if args.debug or reason is None:
            raise
        print(f"Error: database error: {reason} (run with --debug for details)", file=sys.stderr)
        return 1


def _database_failure(exc: Exception) -> str | None:
    """The first line of a database driver's (or SQLAlchemy's) error; None for other errors."""
    # Looked up in sys.modules: a driver that is not loaded cannot have raised, and importing
    # one here would slow every CLI call.
    kinds = [
        getattr(sys.modules.get(module), name, None)
        for module, name in (
            ("sqlalchemy.exc", "DBAPIError"),
            ("sqlite3", "Error"),
            ("psycopg", "Error"),
            ("sandbox_kit.dbapi", "TransientError"),
        )
    ]
    if not any(isinstance(kind, type) and isinstance(exc, kind) for kind in kinds):
        return None
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def _sandbox(args: argparse.Namespace) -> Sandbox:
    # Imported here, not at the top, so `--help` and usage errors need no database layer. The
    # import creates ~50,000 objects and no garbage, yet the cyclic collector would run ~130
    # times over them: off meanwhile, the import takes ~10% less time (issue 9).
    collecting = gc.isenabled()
    gc.disable()
    try:
        from sandbox_kit.sandbox import Sandbox
    finally:
        if collecting:
            gc.enable()
    return Sandbox(home=args.home)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox-kit",
        description="Upload, version, run and watch DMO, RMO and SO optimization models.",
    )
    p.add_argument("--home", help="sandbox folder (default: $SANDBOX_HOME or the current one)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("upload", help="validate and store a model file as a new version")
    up.add_argument("path")
    up.add_argument("--type", required=True, type=str.upper, choices=TYPES, dest="model_type")
    up.add_argument("--name")
    up.add_argument("--description", default="")
    up.add_argument("--no-activate", action="store_true")
    up.add_argument("--json", action="store_true")
    up.set_defaults(handler=_upload)

    ls = sub.add_parser("models", help="list model versions")
    ls.add_argument("--type", type=str.upper, choices=TYPES, dest="model_type")
    ls.add_argument("--status", choices=[s.value for s in ModelStatus])
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_models)

    show = sub.add_parser("show", help="show one model version")
    show.add_argument("model_id", type=int, metavar="MODEL_ID")
    show.add_argument("--source", action="store_true", help="print its source code")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)

    for verb, text in (
        ("activate", "make a version the one its type runs"),
        ("archive", "hide a version from runs"),
        ("restore", "bring an archived version back as inactive"),
    ):
        cmd = sub.add_parser(verb, help=text)
        cmd.add_argument("model_id", type=int, metavar="MODEL_ID")
        cmd.set_defaults(handler=_change, verb=verb)

    rm = sub.add_parser("delete", help="delete a version with its jobs' records and logs")
    rm.add_argument("model_id", type=int, metavar="MODEL_ID")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(handler=_delete)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=_db_upgrade)

    run = sub.add_parser("run", help="run a model (by id, or a type's active version)")
    run.add_argument("target", metavar="MODEL_ID|DMO|RMO|SO")
    run.add_argument("--config", help="JSON object, or @FILE holding one")
    run.add_argument("--data-source", dest="data_source")
    run.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    run.add_argument("--wait", action="store_true", help="wait for the end; exit 0 on success")
    run.add_argument("--follow", action="store_true", help="stream the log until the end")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=_run)

    jobs = sub.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--type", type=str.upper, choices=TYPES, dest="model_type")
    jobs.add_argument("--status", choices=[s.value for s in JobStatus])
    jobs.add_argument("--model", type=int, metavar="MODEL_ID")
    jobs.add_argument("--limit", type=int, default=100)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(handler=_jobs)

    st = sub.add_parser("status", help="show one job")
    st.add_argument("job_id", metavar="JOB_ID")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=_status)

    logs = sub.add_parser("logs", help="print a job's log")
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument("--follow", action="store_true")
    logs.add_argument("--since", type=int, default=0, metavar="SEQ")
    logs.add_argument("--level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    logs.add_argument("--json", action="store_true")
    logs.set_defaults(handler=_logs)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id", metavar="JOB_ID")
    cancel.set_defaults(handler=_cancel)

    serve = sub.add_parser("serve", help="serve the dashboard with Voila (token required)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8866)
    serve.add_argument("--token", help="access token (default: a random one, printed)")
    serve.add_argument("--no-examples", action="store_true", help="do not register samples")
    serve.set_defaults(handler=_serve)
    return p


def _upload(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    model = sb.upload(
        args.path,
        args.model_type,
        name=args.name,
        description=args.description,
        activate=not args.no_activate,
    )
    if args.json:
        _print_json(model.to_dict())
    else:
        print(f"Uploaded {model.model_type.value} model {model.label} ({model.status.value}).")
        print(model.id)
    return 0


def _models(args: argparse.Namespace) -> int:
    models = _sandbox(args).models(args.model_type, args.status)
    if args.json:
        _print_json([m.to_dict() for m in models])
        return 0
    if not models:
        print("No models yet. Upload one with: sandbox-kit upload FILE --type DMO")
        return 0
    rows = [_model_row(m) for m in models]
    _print_table(["ID", "TYPE", "NAME", "VER", "STATUS", "SIZE", "SHA256", "CREATED"], rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    model = sb.model(args.model_id)
    if args.source:
        try:
            sys.stdout.buffer.write(Path(model.path).read_bytes())  # byte-exact, BOM included
        except FileNotFoundError:
            raise ValidationError("the stored file is missing", filename=model.path) from None
        return 0
    if args.json:
        _print_json(model.to_dict())
        return 0
    for key, value in model.to_dict().items():
        print(f"{key:18} {value}")
    return 0


def _change(args: argparse.Namespace) -> int:
    model: Model = getattr(_sandbox(args), args.verb)(args.model_id)
    print(f"Model {model.id} ({model.model_type.value} {model.label}) is now {model.status.value}.")
    return 0


def _delete(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    model = sb.model(args.model_id)
    jobs = sb.jobs(model=model.id, limit=1_000_000)
    if not args.yes:
        question = (
            f"Delete {model.model_type.value} model {model.label} (id {model.id}) and "
            f"{len(jobs)} job record(s) with their logs? [y/N] "
        )
        if not sys.stdin.isatty():
            raise ValidationError("refusing to delete without confirmation; pass --yes")
        if input(question).strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    sb.delete(model.id)
    print(f"Deleted model {model.id} ({model.label}) and {len(jobs)} job record(s).")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    sb = _sandbox(args)  # opening upgrades; say where it stands
    print(f"Database is at revision {sb.db.revision()}.")
    return 0


def _run(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    target: int | str = int(args.target) if args.target.isdigit() else args.target
    job = sb.run(
        target,
        config=_config(args.config),
        data_source_id=args.data_source,
        timeout=args.timeout,
    )
    if not args.json:
        print(
            f"Started job {job.id} ({job.info.model_type.value} {job.info.model_name} "
            f"v{job.info.model_version}).",
            file=sys.stderr,
        )
    if args.follow:
        for event in job.follow():
            if event.line is not None:
                _print_line(event.line, as_json=False)
        sys.stdout.flush()
    elif args.wait:
        job.wait()
    info = job.refresh().info
    if args.follow or args.wait:
        print(_summary(info), file=sys.stderr)
    if args.json:
        _print_json(info.to_dict())
    print(job.id)
    if args.follow or args.wait:
        return 0 if info.status is JobStatus.SUCCESS else 1
    return 0


def _jobs(args: argparse.Namespace) -> int:
    jobs = _sandbox(args).jobs(args.model_type, args.status, args.model, args.limit)
    if args.json:
        _print_json([_status_dict(j) for j in jobs])
        return 0
    if not jobs:
        print("No jobs yet. Start one with: sandbox-kit run DMO")
        return 0
    rows = [
        [
            j.id,
            f"{j.model_name} v{j.model_version}",
            j.status.value,
            when(j.started_at),
            duration(j.duration_s),
            j.reason or ("exit 0" if j.exit_code == 0 else ""),
        ]
        for j in jobs
    ]
    _print_table(["JOB", "MODEL", "STATUS", "STARTED", "DURATION", "REASON"], rows)
    return 0


def _status(args: argparse.Namespace) -> int:
    info = _sandbox(args).job_info(args.job_id)
    if args.json:
        _print_json(_status_dict(info))
        return 0
    for key, value in _status_dict(info).items():
        print(f"{key:14} {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    job = _sandbox(args).job(args.job_id)
    wanted = args.level
    lines: Any
    if args.follow:
        lines = (e.line for e in job.follow(since=args.since) if e.line is not None)
    else:
        lines = job.iter_logs(since=args.since)  # streamed: constant memory on a 1 GiB log
    for line in lines:
        if wanted is None or line.level == wanted:
            _print_line(line, as_json=args.json)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    before = sb.job_info(args.job_id)
    if before.status.terminal:
        print(f"Job {before.id} already ended ({before.status.value}); nothing to cancel.")
        return 0
    sb.cancel(args.job_id)
    job = sb.job(args.job_id)
    try:
        info = job.wait(timeout=sb.settings.kill_grace_s + 15)
    except TimeoutError:
        info = job.info
    print(f"Job {info.id} is {info.status.value}.")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from sandbox_kit.serve import serve

    return serve(
        home=args.home,
        host=args.host,
        port=args.port,
        token=args.token,
        examples=not args.no_examples,
    )


def _config(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    source = "--config"
    if value.startswith("@"):
        source = value[1:]
        try:
            value = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(
                f"cannot read config file: {exc.strerror}", filename=source
            ) from None
    return parse_config(value, filename=source)


def _status_dict(info: JobInfo) -> dict[str, Any]:
    data = info.to_dict()
    keys = [
        "id",
        "model_id",
        "model_type",
        "status",
        "exit_code",
        "signal",
        "reason",
        "config",
        "created_at",
        "started_at",
        "finished_at",
        "log_path",
        "result_dir",
        "truncated",
    ]
    ordered = {k: data[k] for k in keys}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    return ordered


def _summary(info: JobInfo) -> str:
    parts = [f"Job {info.id} {info.status.value}"]
    if info.reason:
        parts.append(f"({info.reason})")
    if info.duration_s is not None:
        parts.append(f"in {duration(info.duration_s)}")
    if info.outcome:
        parts.append(f"- outcome {info.outcome}")
    return " ".join(parts) + "."


def _print_line(line: LogLine, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(line.to_dict(), ensure_ascii=False))
    else:
        print(line.text)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=None, ensure_ascii=False))


def _model_row(m: Model) -> list[str]:
    status = m.status.value + (" *" if m.active else "")
    return [
        str(m.id),
        m.model_type.value,
        m.name,
        str(m.version),
        status,
        size(m.size),
        m.sha256[:12],
        when(m.created_at),
    ]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
