"""The CLI's ``schedule`` and ``scheduler`` commands (issue 10), added to the parser of
:mod:`sandbox_kit.cli` with its conventions: ``--json`` for machines, the id printed last,
``Error: <sentence>`` and exit 1 for a refused request.

::

    sandbox-kit schedule add TARGET (--cron EXPR | --preset NAME) [--tz ZONE] [--config JSON|@FILE]
            [--data-source ID|latest:TYPE] [--missed skip|once] [--overlap skip|queue|cancel]
            [--deadline MINUTES] [--deadline-action notify|cancel] [--notify URL ...]
            [--notify-on EVENTS] [--name NAME] [--json]
    sandbox-kit schedule list [--json]
    sandbox-kit schedule show ID [--next N] [--json]
    sandbox-kit schedule pause|resume|delete ID
    sandbox-kit scheduler [--once]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sandbox_kit.cli import _config, _print_json, _print_table, _sandbox
from sandbox_kit.records import Schedule, ScheduleFire

_FORMAT = "%(asctime)s %(levelname)s [%(process)d] scheduler: %(message)s"
_PRESETS = ("day-ahead", "real-time-5min", "real-time-15min", "hourly")  # see cron.PRESETS


def add_commands(sub: Any) -> None:
    """Add ``schedule`` and ``scheduler`` to the CLI's subcommands."""
    sched = sub.add_parser("schedule", help="run models on a clock: add, list, show, pause, ...")
    actions = sched.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="add a schedule",
        description="Run TARGET (a model type, whose active version runs at each fire time, "
        "or a model id) on a cron clock or a preset: day-ahead (09:00 daily, deadline 180 min, "
        "missed once), real-time-5min (*/5, deadline 4 min), real-time-15min (*/15, deadline "
        "14 min), hourly. Options given with --preset override what it sets.",
    )
    add.add_argument("target", metavar="TARGET", help="DMO, RMO, SO or a model id")
    clock = add.add_mutually_exclusive_group(required=True)
    clock.add_argument("--cron", metavar="EXPR", help='five fields, e.g. "0 9 * * *"')
    clock.add_argument("--preset", metavar="NAME", choices=_PRESETS)
    add.add_argument("--tz", metavar="ZONE", help="IANA time zone (default: the machine's)")
    add.add_argument("--config", help="JSON object, or @FILE holding one")
    add.add_argument(
        "--data-source",
        dest="data_source",
        metavar="ID|latest:TYPE",
        help="resolved at each fire time; latest:DMO is the newest successful DMO's results",
    )
    add.add_argument("--missed", choices=["skip", "once"], help="default skip")
    add.add_argument("--overlap", choices=["skip", "queue", "cancel"], help="default skip")
    add.add_argument("--deadline", type=float, metavar="MINUTES", help="after the fire time")
    add.add_argument(
        "--deadline-action", dest="deadline_action", choices=["notify", "cancel"], default="notify"
    )
    add.add_argument(
        "--notify",
        nargs="+",
        action="extend",
        default=[],
        metavar="URL",
        help="Apprise URL(s): mailto://..., json://..., slack://... (besides SANDBOX_NOTIFY)",
    )
    add.add_argument(
        "--notify-on",
        dest="notify_on",
        metavar="EVENTS",
        help="comma-separated: failed,timeout,lost,deadline,not_started (default), success, "
        "infeasible, error",
    )
    add.add_argument("--name")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_add)

    ls = actions.add_parser("list", help="list schedules with their next fire time")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)

    show = actions.add_parser("show", help="show a schedule, its next fire times and last runs")
    show.add_argument("schedule_id", type=int, metavar="ID")
    show.add_argument("--next", type=int, default=5, metavar="N", dest="next_fires")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)

    for verb, text in (
        ("pause", "stop firing a schedule"),
        ("resume", "fire a paused schedule again"),
        ("delete", "remove a schedule (its runs stay)"),
    ):
        cmd = actions.add_parser(verb, help=text)
        cmd.add_argument("schedule_id", type=int, metavar="ID")
        cmd.set_defaults(handler=_change, verb=verb)

    run = sub.add_parser(
        "scheduler",
        help="fire schedules, watch deadlines and send notifications (foreground)",
        description="Runs until SIGTERM or Ctrl-C; logs to stderr and "
        "$SANDBOX_HOME/logs/scheduler.log. Any number may run against one database: one "
        "leads (a lease in the database), the others stand by.",
    )
    run.add_argument("--once", action="store_true", help="fire what is due now, then exit")
    run.add_argument("--parent-pid", type=int, dest="parent_pid", help=argparse.SUPPRESS)
    run.set_defaults(handler=_scheduler)


def _add(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    target: int | str = int(args.target) if args.target.isdigit() else args.target
    schedule = sb.add_schedule(
        target,
        cron=args.cron,
        preset=args.preset,
        timezone=args.tz,
        config=_config(args.config),
        data_source=args.data_source,
        missed=args.missed,
        overlap=args.overlap,
        deadline=args.deadline,
        deadline_action=args.deadline_action,
        notify=args.notify,
        notify_on=None if args.notify_on is None else args.notify_on.split(","),
        name=args.name,
    )
    shown = sb.schedule(schedule.id, next_fires=1)
    if args.json:
        _print_json(shown.to_dict())
    else:
        nxt = shown.next_fires[0] if shown.next_fires else None
        when = "" if nxt is None else f"; next run {_local(nxt, shown.timezone)}"
        print(f"Added schedule {shown.id} ({shown.name}){when}.", file=sys.stderr)
    print(shown.id)
    return 0


def _list(args: argparse.Namespace) -> int:
    schedules = _sandbox(args).schedules(next_fires=1)
    if args.json:
        _print_json([s.to_dict() for s in schedules])
        return 0
    if not schedules:
        print("No schedules yet. Add one with: sandbox-kit schedule add DMO --preset day-ahead")
        return 0
    rows = [
        [
            str(s.id),
            s.name,
            s.target,
            s.preset or s.cron,
            s.timezone,
            "paused" if s.paused else "active",
            _local(s.next_fires[0], s.timezone) if s.next_fires else "-",
            "-" if s.deadline_min is None else f"{s.deadline_min:g} min",
        ]
        for s in schedules
    ]
    headers = ["ID", "NAME", "TARGET", "CLOCK", "ZONE", "STATE", "NEXT RUN", "DEADLINE"]
    _print_table(headers, rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    schedule = sb.schedule(args.schedule_id, next_fires=max(0, args.next_fires))
    fires = sb.schedule_fires(schedule.id, limit=10)
    if args.json:
        _print_json({**schedule.to_dict(), "fires": [f.to_dict() for f in fires]})
        return 0
    for key, value in schedule.to_dict().items():
        if key != "next_fires":
            print(f"{key:16} {value}")
    print(f"\nNext {len(schedule.next_fires)} fire time(s), {schedule.timezone} and UTC:")
    for moment in schedule.next_fires:
        print(f"  {_local(moment, schedule.timezone)}   {moment.strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"\nLast {len(fires)} fire time(s):" if fires else "\nNo fire times yet.")
    for fire in fires:
        print("  " + _fire_line(fire, schedule.timezone))
    return 0


def _change(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    verb = args.verb
    schedule: Schedule = getattr(sb, f"{verb}_schedule")(args.schedule_id)
    done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[verb]
    print(f"Schedule {schedule.id} ({schedule.name}) {done}.")
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    import signal
    import threading

    from sandbox_kit.cron import clock_from_env
    from sandbox_kit.db import public_url
    from sandbox_kit.errors import ValidationError
    from sandbox_kit.notify import apprise_module
    from sandbox_kit.scheduler import Scheduler

    clock, scale = clock_from_env()
    sb = _sandbox(args)
    log = _process_logger(sb.home)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if settings_notify := sb.settings.notify:
        try:
            apprise_module()
        except ValidationError as exc:  # say it now, not only on each job's record
            log.error("SANDBOX_NOTIFY has %d target(s), but %s", len(settings_notify), exc)
    scheduler = Scheduler(sb, clock=clock, scale=scale, log=log)
    settings = sb.settings
    log.info(
        "started on %s (lease %g s, grace %g s%s)",
        public_url(sb.db.url),
        settings.scheduler_lease_s,
        settings.scheduler_grace_s,
        f", clock x{scale:g}" if scale != 1.0 else "",
    )
    try:
        last = scheduler.run(stop, once=args.once, parent_pid=args.parent_pid)
    finally:
        sb.close()
    if args.once and not last.leading:
        log.info("another scheduler leads; nothing fired")
    elif args.once:
        log.info(
            "one pass: %d fire time(s) claimed, %d run(s) started, %d notification(s)",
            len(last.claimed),
            len(last.submitted),
            last.notified,
        )
    log.info("stopped")
    return 0


def _process_logger(home: Path) -> logging.Logger:
    """The scheduler process's logger: stderr and ``$SANDBOX_HOME/logs/scheduler.log``."""
    folder = home / "logs"
    log = logging.getLogger("sandbox_kit.scheduler")
    log.setLevel(logging.INFO)
    log.propagate = False
    formatter = logging.Formatter(_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    with contextlib.suppress(OSError):  # an unwritable home: stderr still tells
        handlers.append(logging.FileHandler(folder / "scheduler.log", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    # Apprise reports delivery troubles through its own logger; ours records the outcome.
    logging.getLogger("apprise").propagate = False
    return log


def _local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _fire_line(fire: ScheduleFire, zone: str) -> str:
    state = fire.outcome
    if fire.job_id:
        status = fire.job_status.value if fire.job_status else "?"
        state = f"{fire.job_id} {status}"
        if fire.deadline_missed:
            state += " (deadline missed)"
    detail = f" - {fire.detail}" if fire.detail else ""
    return f"{_local(fire.fire_at, zone)}  {state}{detail}"
