"""Tables of reusable rows: one HTML widget for a row's cells, rows created only when needed.

Every widget costs a comm and a layout model on both sides; a table of 40 rows made of one
widget per cell took seconds to build and to render in the browser. Here a row is one HTML
widget plus its buttons, and rows are added only when there is something to show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as W

Columns = Sequence[tuple[str, str]]  # (title, CSS width)


class Row(Protocol):
    """What a table needs from a row widget."""

    def show(self, item: Any) -> None:
        """Fill the row with an item, or hide it when ``item`` is None."""


def cells_html(values: Sequence[str], columns: Columns) -> str:
    """A row of fixed-width cells; ``values`` are HTML already escaped by the caller."""
    cells = "".join(
        f'<span class="sk-cell" style="width:{width}">{value}</span>'
        for value, (_, width) in zip(values, columns, strict=True)
    )
    return f'<div class="sk-cells">{cells}</div>'


class Table(W.VBox):  # type: ignore[misc]
    """A header line and up to ``limit`` rows made by ``make_row`` on demand."""

    def __init__(self, columns: Columns, make_row: Callable[[], Any], limit: int) -> None:
        self.header = W.HTML(cells_html([f"<b>{title}</b>" for title, _ in columns], columns))
        self.header.add_class("sk-row")
        self.make_row = make_row
        self.limit = limit
        self.rows: list[Any] = []
        super().__init__([self.header])

    def show(self, items: Sequence[Any]) -> None:
        """Show the first ``limit`` items; surplus rows are hidden, not destroyed."""
        wanted = min(len(items), self.limit)
        if len(self.rows) < wanted:
            self.rows.extend(self.make_row() for _ in range(wanted - len(self.rows)))
            self.children = (self.header, *self.rows)
        for i, row in enumerate(self.rows):
            row.show(items[i] if i < len(items) else None)
