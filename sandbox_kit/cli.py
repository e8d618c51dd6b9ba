"""The ``sandbox-kit`` command line (also ``python -m sandbox_kit``).

Errors print ``Error: <sentence>`` on stderr and exit 1; usage errors exit 2; no traceback
unless ``--debug``. ``--home`` wins over ``$SANDBOX_HOME``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
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
    except BrokenPipeError:
        # `sandbox-kit logs JOB | head`: the reader left; nothing to say (and stdout is gone).
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep interpreter exit quiet
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
    # Imported here, not at the top, so `--help` and usage errors need no database layer.
    # The import and the opening create ~50,000 long-lived objects and no garbage, yet the
    # cyclic collector would run ~130 times over them, and again at exit: off meanwhile, then
    # frozen (ignored by later collections), they cost ~100 ms less per call, a third of the
    # 300 ms budget of issue 9 (measured in bench/bench_cli.py).
    collecting = gc.isenabled()
    gc.disable()
    try:
        from sandbox_kit.sandbox import Sandbox

        return Sandbox(home=args.home, actor=args.actor)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox-kit",
        description="Upload, version, run and watch DMO, RMO and SO optimization models.",
    )
    p.add_argument("--home", help="sandbox folder (default: $SANDBOX_HOME or the current one)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help="name recorded in the audit trail (default: $JUPYTERHUB_USER, else the OS user)",
    )
    p.add_argument("--version", action="version", version=f"sandbox-kit {_version()}")
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
    run.add_argument(
        "--data-source",
        dest="data_source",
        metavar="SOURCE",
        help="data:NAME[@VERSION], job:JOB_ID (or a bare job id) or latest:TYPE",
    )
    caching = run.add_mutually_exclusive_group()
    caching.add_argument(
        "--cache",
        action="store_const",
        const=True,
        dest="cache",
        help="reuse an identical earlier run's result (default: $SANDBOX_CACHE_<TYPE>)",
    )
    caching.add_argument(
        "--no-cache", action="store_const", const=False, dest="cache", help="always run"
    )
    run.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    run.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="queue a lost job again, up to N times (default: $SANDBOX_RETRIES[_<TYPE>], 0)",
    )
    run.add_argument("--wait", action="store_true", help="wait for the end; exit 0 on success")
    run.add_argument("--follow", action="store_true", help="stream the log until the end")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=_run)

    jobs = sub.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--type", type=str.upper, choices=TYPES, dest="model_type")
    jobs.add_argument("--status", choices=[s.value for s in JobStatus])
    jobs.add_argument("--model", type=int, metavar="MODEL_ID")
    jobs.add_argument("--schedule", type=int, metavar="SCHEDULE_ID", help="only its runs")
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
    serve.add_argument(
        "--no-scheduler", action="store_true", help="do not start a scheduler beside Voila"
    )
    serve.add_argument(
        "--cull-after",
        type=int,
        default=600,
        metavar="SECONDS",
        help="shut down a page's kernel within this long after the page is gone "
        "(default 600; 0: never)",
    )
    serve.set_defaults(handler=_serve)

    doc = sub.add_parser("doctor", help="what isolation, database and interpreters this has")
    doc.add_argument("--json", action="store_true")
    doc.set_defaults(handler=_doctor)

    ex = sub.add_parser("examples", help="copy the sample models into a folder, for editing")
    ex.add_argument("dest", nargs="?", default="examples", metavar="DEST")
    ex.set_defaults(handler=_examples)

    au = sub.add_parser("audit", help="who did what: the audit trail, newest first")
    au.add_argument("--since", help="ISO date or time (UTC), or a span back: 90m, 12h, 7d")
    au.add_argument("--actor", dest="actor_filter", help="only this actor's entries")
    au.add_argument("--action", help="only this action (upload, activate, run, cancel, ...)")
    au.add_argument("--object", dest="object_id", metavar="ID", help="only this model or job")
    au.add_argument("--limit", type=int, default=1000)
    au.add_argument("--json", action="store_true")
    au.set_defaults(handler=_audit)

    from sandbox_kit.cli_data import add_commands  # data, cache and sweep (issue 11)

    add_commands(sub)
    from sandbox_kit.cli_schedule import add_commands as add_schedule_commands  # issue 10

    add_schedule_commands(sub)
    from sandbox_kit.cli_cluster import add_commands as add_cluster_commands  # issue 12

    add_cluster_commands(sub)
    return p


def _version() -> str:
    from sandbox_kit import __version__

    return __version__


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
    _print_table(["ID", "TYPE", "NAME", "VER", "STATUS", "SIZE", "SHA256", "CREATED", "BY"], rows)
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
        cache=args.cache,
        retries=args.retries,
    )
    if not args.json:
        what = f"{job.info.model_type.value} {job.info.model_name} v{job.info.model_version}"
        if job.info.cached_from:
            print(f"Job {job.id} ({what}) reused job {job.info.cached_from}.", file=sys.stderr)
        else:
            print(f"Started job {job.id} ({what}).", file=sys.stderr)
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
    jobs = _sandbox(args).jobs(
        args.model_type, args.status, args.model, args.limit, schedule=args.schedule
    )
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
            j.isolation or "",
            j.started_by or "",
            _reason(j),
        ]
        for j in jobs
    ]
    headers = ["JOB", "MODEL", "STATUS", "STARTED", "DURATION", "ISOLATION", "BY", "REASON"]
    if any(j.remote for j in jobs):  # issue 12: where each ran
        headers.insert(5, "WORKER")
        for row, j in zip(rows, jobs, strict=True):
            row.insert(5, j.worker or "")
    _print_table(headers, rows)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from sandbox_kit.doctor import report

    rows = report(_sandbox(args))
    if args.json:
        _print_json(dict(rows))
        return 0
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = _sandbox(args).job_info(args.job_id)
    if args.json:
        _print_json(_status_dict(info))
        return 0
    for key, value in _status_dict(info).items():
        print(f"{key:14} {json.dumps(value) if isinstance(value, dict | list) else value}")
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
        cull_after=args.cull_after,
        actor=args.actor,
        scheduler=not args.no_scheduler,
    )


def _examples(args: argparse.Namespace) -> int:
    from sandbox_kit.assets import copy_examples

    copies = copy_examples(args.dest)
    for copy in copies:
        print(copy)
    first = next((c for c in copies if c.name == "dmo.py"), None)
    if first is not None:
        print(
            f"Copied {len(copies)} file(s). Upload an edited model with: "
            f"sandbox-kit upload {first} --type DMO",
            file=sys.stderr,
        )
    return 0


def _audit(args: argparse.Namespace) -> int:
    from sandbox_kit.audit import parse_since

    since = None if args.since is None else parse_since(args.since)
    entries = _sandbox(args).audit(
        since=since,
        actor=args.actor_filter,
        action=args.action,
        object_id=args.object_id,
        limit=args.limit,
    )
    if args.json:
        _print_json([e.to_dict() for e in entries])
        return 0
    if not entries:
        print("No audit entries match.")
        return 0
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            f"{e.object_type} {e.object_id}",
            _audit_summary(e.details),
        ]
        for e in entries
    ]
    _print_table(["AT (UTC)", "ACTOR", "ACTION", "OBJECT", "DETAILS"], rows)
    return 0


def _audit_summary(details: dict[str, Any]) -> str:
    if "name" in details and "version" in details:
        text = f"{details.get('model_type', '')} {details['name']} v{details['version']}"
    elif "model_name" in details:
        text = f"{details['model_name']} v{details.get('model_version', '?')}"
    else:
        text = ""
    extra = {
        k: v
        for k, v in details.items()
        if k not in {"model_type", "name", "version", "sha256", "model_id", "model_name",
                     "model_version", "model_sha256"}
        and v not in (None, {}, "")
    }  # fmt: skip
    if extra:
        text += " " + json.dumps(extra, ensure_ascii=False, sort_keys=True)
    return text.strip()


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


def _reason(info: JobInfo) -> str:
    if info.cached_from:
        return f"cached from {info.cached_from}"
    if info.best_found:  # stopped, with the best solution it had (issue 15)
        return f"{info.reason}; {info.best_found}" if info.reason else info.best_found
    return info.reason or ("exit 0" if info.exit_code == 0 else "")


def _summary(info: JobInfo) -> str:
    parts = [f"Job {info.id} {info.status.value}"]
    if info.cached_from:
        parts.append(f"(cached from {info.cached_from})")
    if info.reason:
        parts.append(f"({info.reason})")
    if info.duration_s is not None:
        parts.append(f"in {duration(info.duration_s)}")
    if info.outcome:
        parts.append(f"- outcome {info.outcome}")
    if info.best_found:
        parts.append(f"- {info.best_found}")
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
        m.created_by or "",
    ]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
