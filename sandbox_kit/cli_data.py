"""The CLI's ``data``, ``cache`` and ``sweep`` commands (issue 11), added to the parser of
:mod:`sandbox_kit.cli`, with the same conventions: ``--json`` for machines, the id printed last,
``Error: <sentence>`` and exit 1 for a refused request.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandbox_kit.cli import TYPES, _config, _print_json, _print_table, _sandbox
from sandbox_kit.errors import ValidationError
from sandbox_kit.humanize import size, when
from sandbox_kit.records import DataSet, Scenario, SweepInfo

_SWEEP_ACTIONS = ("show", "list", "cancel")
_METRICS_SHOWN = 4  # metric columns in the text table of `sweep show` (all of them in --json)


def add_commands(sub: Any) -> None:
    """Add ``data``, ``cache`` and ``sweep`` to the CLI's subcommands."""
    data = sub.add_parser("data", help="versioned input data sets (files, folders, zips)")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    add = data_sub.add_parser("add", help="store a file, folder or zip as the next version")
    add.add_argument("path")
    add.add_argument("--name", required=True)
    add.add_argument("--description", default="")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_data_add)
    ls = data_sub.add_parser("list", help="list data set versions")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_data_list)
    show = data_sub.add_parser("show", help="show one version (the newest without @VERSION)")
    show.add_argument("ref", metavar="NAME[@VERSION]")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_data_show)
    rm = data_sub.add_parser("delete", help="delete a version, or every version of a name")
    rm.add_argument("ref", metavar="NAME[@VERSION]")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(handler=_data_delete)

    cache = sub.add_parser("cache", help="the result cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    clear = cache_sub.add_parser("clear", help="stop reusing finished runs (records stay)")
    clear.add_argument("--type", type=str.upper, choices=TYPES, dest="model_type")
    clear.add_argument("--older-than", type=float, metavar="DAYS", dest="older_than")
    clear.set_defaults(handler=_cache_clear)

    sweep = sub.add_parser(
        "sweep",
        help="run a model over a grid of configs; or: sweep show|list|cancel",
        description="sweep TARGET --grid JSON | --cases FILE starts a sweep (one job per "
        "scenario); sweep show ID, sweep list and sweep cancel ID look after them.",
    )
    sweep.add_argument("target", metavar="MODEL_ID|DMO|RMO|SO|show|list|cancel")
    sweep.add_argument("sweep_id", nargs="?", metavar="SWEEP_ID")
    sweep.add_argument("--grid", help="JSON object of key -> list of values, or @FILE")
    sweep.add_argument("--cases", metavar="FILE", help="JSON lines, one config per scenario")
    sweep.add_argument("--base-config", dest="base_config", help="JSON object, or @FILE")
    sweep.add_argument("--data-source", dest="data_source", metavar="SOURCE")
    sweep.add_argument("--timeout", type=float, help="wall-clock limit per job, in seconds")
    caching = sweep.add_mutually_exclusive_group()
    caching.add_argument("--cache", action="store_const", const=True, dest="cache")
    caching.add_argument("--no-cache", action="store_const", const=False, dest="cache")
    sweep.add_argument("--wait", action="store_true", help="wait until every scenario ended")
    sweep.add_argument("--limit", type=int, default=50, help="sweeps listed (sweep list)")
    sweep.add_argument("--json", action="store_true")
    sweep.set_defaults(handler=_sweep)


# -- data -------------------------------------------------------------------------------------


def _data_add(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    data_set, created = sb.datastore.add(
        args.path, name=args.name, description=args.description, actor=sb.actor
    )
    if args.json:
        _print_json({**data_set.to_dict(), "created": created})
    else:
        what = f"data set {data_set.label} ({data_set.files} file(s), {size(data_set.size)})"
        if created:
            print(f"Stored {what}.", file=sys.stderr)
        else:
            print(f"Already stored: {what}; no new version was made.", file=sys.stderr)
        print(data_set.source)
    return 0


def _data_list(args: argparse.Namespace) -> int:
    found = _sandbox(args).data_sets()
    if args.json:
        _print_json([d.to_dict() for d in found])
        return 0
    if not found:
        print("No data sets yet. Add one with: sandbox-kit data add PATH --name NAME")
        return 0
    rows = [_data_row(d) for d in found]
    _print_table(["NAME", "VER", "KIND", "FILES", "SIZE", "SHA256", "CREATED", "DESCRIPTION"], rows)
    return 0


def _data_show(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    data_set = sb.data_set(args.ref)
    files = sb.datastore.files(data_set)
    if args.json:
        listed = [{"path": path, "size": length} for path, length in files]
        _print_json({**data_set.to_dict(), "file_list": listed})
        return 0
    for key, value in data_set.to_dict().items():
        print(f"{key:14} {value}")
    print("files:")
    for path, length in files:
        print(f"  {path}  ({size(length)})")
    if len(files) < data_set.files:
        print(f"  ... and {data_set.files - len(files)} more")
    return 0


def _data_delete(args: argparse.Namespace) -> int:
    sb = _sandbox(args)
    if "@" in args.ref:
        doomed = [sb.data_set(args.ref)]
    else:
        doomed = sb.data_sets(args.ref.removeprefix("data:"))
        if not doomed:
            sb.data_set(args.ref)  # raises the not-found error
    labels = ", ".join(d.label for d in doomed)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValidationError("refusing to delete without confirmation; pass --yes")
        if input(f"Delete data set {labels}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    deleted = sb.delete_data(args.ref)
    print(f"Deleted data set {', '.join(d.label for d in deleted)}.")
    return 0


def _data_row(d: DataSet) -> list[str]:
    return [
        d.name,
        str(d.version),
        d.kind,
        str(d.files),
        size(d.size),
        d.sha256[:12],
        when(d.created_at),
        d.description[:40],
    ]


# -- cache ------------------------------------------------------------------------------------


def _cache_clear(args: argparse.Namespace) -> int:
    count = _sandbox(args).clear_cache(model_type=args.model_type, older_than_days=args.older_than)
    print(f"Cleared {count} cached result(s); those runs will not be reused.")
    return 0


# -- sweeps -----------------------------------------------------------------------------------


def _sweep(args: argparse.Namespace) -> int:
    action = args.target.lower()
    if action in _SWEEP_ACTIONS:
        return {"show": _sweep_show, "list": _sweep_list, "cancel": _sweep_cancel}[action](args)
    if args.sweep_id is not None:
        raise ValidationError(f"unexpected argument {args.sweep_id!r} after the target")
    if (args.grid is None) == (args.cases is None):
        raise ValidationError("give --grid JSON or --cases FILE (one of them)")
    grid = None
    cases = None
    if args.grid is not None:
        grid = _json_object(args.grid, "--grid")
    else:
        cases = _cases(args.cases)
    sb = _sandbox(args)
    target: int | str = int(args.target) if args.target.isdigit() else args.target
    sweep = sb.sweep(
        target,
        grid,
        cases=cases,
        base_config=_config(args.base_config),
        data_source_id=args.data_source,
        cache=args.cache,
        timeout=args.timeout,
    )
    info = sweep.info
    hits = sum(1 for row in sweep.rows() if row.cached_from is not None)
    print(
        f"Started sweep {info.id}: {info.total} scenario(s) of {info.model_type.value} "
        f"{info.model_name} v{info.model_version}, {hits} from the cache.",
        file=sys.stderr,
    )
    if args.wait:
        info = sweep.wait()
        failed = info.total - info.counts.get("success", 0)
        print(f"Sweep {info.id} done: {info.total - failed} succeeded.", file=sys.stderr)
    if args.json:
        _print_json(sweep.to_dict())
    print(info.id)
    return 1 if args.wait and info.counts.get("success", 0) < info.total else 0


def _sweep_show(args: argparse.Namespace) -> int:
    sweep_id = _need_id(args, "show")
    sweep = _sandbox(args).get_sweep(sweep_id)
    info, rows = sweep.info, sweep.rows()
    if args.json:
        _print_json({**info.to_dict(), "rows": [row.to_dict() for row in rows]})
        return 0
    print(
        f"Sweep {info.id}: {info.model_type.value} {info.model_name} v{info.model_version}, "
        f"{info.done}/{info.total} done{_counts(info)}"
    )
    metrics = list(dict.fromkeys(name for row in rows for name in row.metrics))[:_METRICS_SHOWN]
    header = ["#", *info.params, "JOB", "STATUS", "OUTCOME", "OBJECTIVE", *metrics]
    _print_table(header, [_scenario_row(row, info, metrics) for row in rows])
    return 0


def _sweep_list(args: argparse.Namespace) -> int:
    found = _sandbox(args).sweeps(limit=args.limit)
    if args.json:
        _print_json([info.to_dict() for info in found])
        return 0
    if not found:
        print("No sweeps yet. Start one with: sandbox-kit sweep DMO --grid '{\"x\": [1, 2]}'")
        return 0
    rows = [
        [
            info.id,
            f"{info.model_type.value} {info.model_name} v{info.model_version}",
            ", ".join(info.params),
            f"{info.done}/{info.total}",
            when(info.created_at),
        ]
        for info in found
    ]
    _print_table(["SWEEP", "MODEL", "PARAMETERS", "DONE", "CREATED"], rows)
    return 0


def _sweep_cancel(args: argparse.Namespace) -> int:
    sweep_id = _need_id(args, "cancel")
    sb = _sandbox(args)
    count = sb.cancel_sweep(sweep_id)
    print(f"Sweep {sweep_id}: cancelled {count} scenario(s) that had not finished.")
    return 0


def _need_id(args: argparse.Namespace, action: str) -> str:
    if not args.sweep_id:
        raise ValidationError(f"sweep {action} needs a sweep id")
    return str(args.sweep_id)


def _counts(info: SweepInfo) -> str:
    if not info.counts:
        return ""
    parts = ", ".join(f"{n} {status}" for status, n in sorted(info.counts.items()))
    return f" ({parts})"


def _scenario_row(row: Scenario, info: SweepInfo, metrics: list[str]) -> list[str]:
    status = row.status.value + (" (cached)" if row.cached_from else "")
    return [
        str(row.index),
        *(json.dumps(row.params.get(name)) for name in info.params),
        row.job_id,
        status,
        row.outcome or "",
        "" if row.objective is None else f"{row.objective:.6g}",
        *("" if row.metrics.get(m) is None else f"{row.metrics[m]:.6g}" for m in metrics),
    ]


def _json_object(value: str, option: str) -> dict[str, Any]:
    source = option
    if value.startswith("@"):
        source = value[1:]
        value = _read(source)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"invalid JSON: {exc.msg}", filename=source, line=exc.lineno, column=exc.colno
        ) from None
    if not isinstance(parsed, dict):
        raise ValidationError("must be a JSON object", filename=source)
    return parsed


def _cases(path: str) -> list[dict[str, Any]]:
    from sandbox_kit.sweeps import read_cases

    return read_cases(_read(path), filename=path)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot read it: {exc.strerror}", filename=path) from None
