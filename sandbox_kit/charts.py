"""Charts of model results, drawn with matplotlib to PNG bytes.

PNG keeps the dashboard working offline in Voilà and JupyterLab alike: no frontend extension,
no CDN, no script in an HTML widget. Figures are built with matplotlib's object API (never
``pyplot``), so a view's pump thread can draw while the kernel serves clicks.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from sandbox_kit.records import JobInfo
    from sandbox_kit.telemetry import MetricPoint

_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#84cc16",
           "#f97316", "#14b8a6", "#e11d48", "#6366f1", "#a3a3a3"]  # fmt: skip


def dispatch_chart(table: pd.DataFrame, *, title: str = "Dispatch") -> bytes:
    """Output by unit: stacked areas over time, or bars when there is one period (SO)."""
    x_name = str(table.columns[0])
    units = [c for c in table.columns[1:] if _numeric(table[c])]
    fig, ax = _figure()
    if len(units) == 1:  # one value per row (e.g. MW per generator bus)
        ax.bar(table[x_name].astype(str), table[units[0]], color=_COLORS[0])
        ax.set_xlabel(x_name)
        ax.set_ylabel(f"{units[0]}")
    else:
        ax.stackplot(table[x_name], *(table[u] for u in units), labels=units,
                     colors=_COLORS[: len(units)] * 3, alpha=0.9)  # fmt: skip
        ax.set_xlabel(x_name)
        ax.set_ylabel("MW")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    ax.set_title(title)
    return _png(fig)


def price_chart(
    curves: Sequence[tuple[str, pd.DataFrame]], *, title: str = "Prices", unit: str = "$/MWh"
) -> bytes:
    """Prices over time (a step line per curve), or per bus as bars (LMPs of one period)."""
    fig, ax = _figure()
    by_bus = all(str(t.columns[0]) == "bus" for _, t in curves)
    width = 0.8 / max(1, len(curves))
    for i, (label, table) in enumerate(curves):
        x, y = table.iloc[:, 0], table.iloc[:, 1]
        color = _COLORS[i % len(_COLORS)]
        if by_bus:
            ax.bar([p + i * width for p in range(len(x))], y, width=width, label=label, color=color)
            ax.set_xticks([p + width * (len(curves) - 1) / 2 for p in range(len(x))],
                          [str(v) for v in x])  # fmt: skip
        else:
            ax.step(x, y, where="post", label=label, color=color, linewidth=1.8)
    ax.set_xlabel("bus" if by_bus else str(curves[0][1].columns[0]) if curves else "")
    ax.set_ylabel(unit)
    ax.set_title(title)
    if len(curves) > 1:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def gap_chart(points: Iterable[MetricPoint], *, title: str = "MIP gap") -> bytes:
    """The MIP gap (in %) against solver time, as the solver reports it."""
    gaps = [p for p in points if p.name == "mip_gap"]
    fig, ax = _figure()
    if gaps:
        start = gaps[0].ts
        xs = [(p.ts - start).total_seconds() for p in gaps]
        ax.plot(xs, [100 * p.value for p in gaps], marker="o", markersize=3, color=_COLORS[0])
        ax.set_ylim(bottom=0)
    else:
        ax.text(0.5, 0.5, "no gap reported yet", ha="center", va="center",
                transform=ax.transAxes, color="#7b8794")  # fmt: skip
    ax.set_xlabel("seconds")
    ax.set_ylabel("gap (%)")
    ax.set_title(title)
    return _png(fig)


def history_chart(jobs: Sequence[JobInfo], *, title: str) -> bytes:
    """Objective and run time of a model's runs, coloured by version."""
    from matplotlib.ticker import MaxNLocator

    fig, (top, bottom) = _figure(rows=2, height=3.8)
    runs = [j for j in reversed(jobs) if j.objective is not None]
    versions = sorted({j.model_version for j in runs})
    for i, version in enumerate(versions):
        mine = [(n, j) for n, j in enumerate(runs) if j.model_version == version]
        color = _COLORS[i % len(_COLORS)]
        top.plot([n for n, _ in mine], [j.objective for _, j in mine], "o", color=color,
                 label=f"v{version}")  # fmt: skip
        bottom.bar([n for n, _ in mine], [j.duration_s or 0 for _, j in mine], color=color)
    top.set_ylabel("objective")
    bottom.set_ylabel("run time (s)")
    bottom.set_xlabel("run")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_title(title)
    if versions:
        top.legend(fontsize=8, frameon=False)
    return _png(fig)


def sweep_chart(
    records: Sequence[dict[str, Any]],
    *,
    x: str,
    y: str,
    series: str | None = None,
    title: str = "Sweep",
) -> bytes:
    """``y`` (the objective or a metric) against the parameter ``x``, one line per value of
    the parameter ``series`` (issue 11). Records without a number for ``y`` are left out; a
    non-numeric ``x`` is spread evenly in the order first seen."""
    fig, ax = _figure(height=3.0)
    points = [r for r in records if isinstance(r.get(y), int | float)]
    xs = list(dict.fromkeys(_key(r.get(x)) for r in records))
    numeric_x = all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs)

    def position(record: dict[str, Any]) -> float:
        value: Any = record.get(x)
        return float(value) if numeric_x else float(xs.index(_key(value)))

    groups: dict[Any, list[dict[str, Any]]] = {}
    for record in points:
        groups.setdefault(None if series is None else _key(record.get(series)), []).append(record)
    try:
        labels = sorted(groups)
    except TypeError:  # values of several types: keep the order they came in
        labels = list(groups)
    for i, label in enumerate(labels):
        members = sorted(groups[label], key=position)
        ax.plot([position(r) for r in members], [r[y] for r in members], marker="o",
                markersize=4, linewidth=1.8, color=_COLORS[i % len(_COLORS)],
                label=None if series is None else f"{series} = {label}")  # fmt: skip
    if not numeric_x:
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    if not points:
        ax.text(0.5, 0.5, "no results yet", ha="center", va="center",
                transform=ax.transAxes, color="#7b8794")  # fmt: skip
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    if series and groups:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def _key(value: Any) -> Any:
    # Lists and objects (a grid may hold them) become their JSON text, so they can be keys.
    if isinstance(value, list | dict):
        import json

        return json.dumps(value, sort_keys=True)
    return value


def _numeric(column: Any) -> bool:
    return str(column.dtype).startswith(("int", "float"))


def _figure(rows: int = 1, height: float = 2.6) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, height), dpi=100, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=rows > 1)
    for ax in [axes] if rows == 1 else axes:
        _style(ax)
    return fig, axes


def _style(ax: Axes) -> None:
    ax.grid(True, color="#e4e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.title.set_fontsize(10)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
