"""Tables of reusable rows: one HTML widget for a row's cells, rows created only when needed.

Every widget costs a comm and a layout model on both sides; a table of 40 rows made of one
widget per cell took seconds to build and to render in the browser. Here a row is one HTML
widget plus its buttons, and rows are added only when there is something to show.

Tables fit any output width (issue 14; JupyterLab from 600 px, Voilà up to 1600 px): while
the table is wide enough its columns line up under the header, shrinking a little and
ellipsising what does not fit (every cell's title holds its whole text); narrower, each row
becomes a small block of ``label: value`` pairs headed by its key cell, with its buttons
beside it or under it. A CSS container query on the table's own width switches the two, so
it works inside a JupyterLab cell, a side panel or a Voilà page alike.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as W

Columns = Sequence[tuple[str, str]]  # (title, CSS width in px)

_TAG = re.compile(r"<[^>]*>")
# Columns may shrink to this share of their width before rows stack.
_SHRINK = 0.85


class Row(Protocol):
    """What a table needs from a row widget."""

    def show(self, item: Any) -> None:
        """Fill the row with an item, or hide it when ``item`` is None."""


def cells_html(values: Sequence[str], columns: Columns) -> str:
    """A row of cells; ``values`` are HTML already escaped by the caller.

    Each cell carries its column's title (shown as a label when rows stack) and its text as a
    tooltip, so a cell cut short by an ellipsis can still be read.
    """
    cells = "".join(
        f'<span class="sk-cell" style="flex-basis:{width}" data-label="{html.escape(title)}"'
        f"{_tooltip(value)}>{value}</span>"
        for value, (title, width) in zip(values, columns, strict=True)
    )
    return f'<div class="sk-cells">{cells}</div>'


def _tooltip(value: str) -> str:
    text = " ".join(html.unescape(_TAG.sub("", value)).split())
    return f' title="{html.escape(text)}"' if text else ""


class Table(W.VBox):  # type: ignore[misc]
    """A header line and up to ``limit`` rows made by ``make_row`` on demand.

    Args:
        columns: (title, width) of each cell, widths in px.
        make_row: makes one row widget: its cells (an HTML widget with class
            ``sk-cells-box`` holding :func:`cells_html`) and its buttons.
        limit: rows shown at most.
        name: names the table in its CSS (letters, digits, ``-``).
        actions_px: the width of a row's buttons, margins included.
        key: the column that heads a row once rows stack (its label is not shown).
    """

    def __init__(
        self,
        columns: Columns,
        make_row: Callable[[], Any],
        limit: int,
        *,
        name: str,
        actions_px: int = 0,
        key: int = 0,
    ) -> None:
        head = "".join(
            f'<span class="sk-cell" style="flex-basis:{width}"><b>{html.escape(title)}</b></span>'
            for title, width in columns
        )
        style = _stack_css(name, columns, actions_px, key)
        self.header = W.HTML(
            f'{style}<div class="sk-cells sk-table-head" style="padding-right:{actions_px}px">'
            f"{head}</div>"
        )
        self.header.add_class("sk-row")
        self.header.add_class("sk-table-header")
        self.make_row = make_row
        self.limit = limit
        self.rows: list[Any] = []
        super().__init__([self.header])
        self.add_class("sk-table-box")
        self.add_class(f"sk-tbl-{name}")

    def show(self, items: Sequence[Any]) -> None:
        """Show the first ``limit`` items; surplus rows are hidden, not destroyed."""
        wanted = min(len(items), self.limit)
        if len(self.rows) < wanted:
            self.rows.extend(self.make_row() for _ in range(wanted - len(self.rows)))
            self.children = (self.header, *self.rows)
        for i, row in enumerate(self.rows):
            row.show(items[i] if i < len(items) else None)


def _stack_css(name: str, columns: Columns, actions_px: int, key: int) -> str:
    """This table's container and the width below which its rows stack."""
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ValueError(f"table name {name!r}: letters, digits and '-' only")
    total = sum(int(width.removesuffix("px")) for _, width in columns)
    below = int(total * _SHRINK) + actions_px + 24
    # Two classes: these rules must beat the stylesheet's, which may come later in the page
    # (every %%sandbox card carries a copy).
    t = f".sk-table-box.sk-tbl-{name}"
    return (
        "<style>"
        f".sk-tbl-{name} {{ container: sk-tbl-{name} / inline-size; }}"
        f"@container sk-tbl-{name} (max-width: {below}px) {{"
        f"{t} .sk-table-header {{ display: none !important; }}"
        f"{t} .sk-row {{ flex-wrap: wrap; row-gap: 4px; align-items: flex-start; }}"
        f"{t} .sk-cells-box {{ flex: 1 1 260px; }}"
        f"{t} .sk-cells-box .widget-html-content {{ line-height: 1.45; }}"
        f"{t} .sk-cells {{ flex-wrap: wrap; gap: 2px 14px; padding: 2px 0; }}"
        f"{t} .sk-cell {{ flex: 0 1 auto !important; max-width: 100%; padding: 0; }}"
        f'{t} .sk-cell:not([data-label=""])::before {{ content: attr(data-label) ": ";'
        " color: var(--jp-ui-font-color2, #616e7c); font-size: 12px; }"
        f"{t} .sk-cell:nth-child({key + 1}) {{ order: -1; flex-basis: 100% !important;"
        " font-weight: 600; }"
        f"{t} .sk-cell:nth-child({key + 1})::before {{ content: none; }}"
        "}"
        "</style>"
    )
