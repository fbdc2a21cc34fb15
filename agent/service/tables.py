"""Tables for a terminal of any width: whole values or no column, never a cut number or name.

rich squeezes a table that is too wide by cutting cells (`8155/815…`, `E…`): on a status
screen that is wrong data, not just ugly. `fit` keeps every cell whole instead: first it
shortens the columns that can say the same in fewer characters (a uuid to `GPU-8d6f1c2e…`,
unique enough to tell GPUs apart on one host), then it drops whole columns, least important
first, until the table fits. `render` prints the result, one line per row.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

DEFAULT_WIDTH = 200  # off a terminal (a pipe, a file): wide enough for every column whole


@dataclass(frozen=True)
class Column:
    """One column: its cells as plain text and how it may give way when space is short."""

    header: str
    cells: Sequence[str]
    priority: int = 0  # higher gives way first; 0 is never dropped
    shorten: Callable[[str], str] | None = None  # a shorter form that says the same
    styles: Sequence[str] = field(default=())  # rich style per cell (same length), optional

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


_UUID = re.compile(r"^(GPU|MIG)-(?:GPU-)?([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-.+$")


def short_uuid(value: str) -> str:
    """`GPU-8d6f1c2e-…-40ab` → `GPU-8d6f1c2e…`: the prefix and the first 8 hex digits. Only an
    NVIDIA-shaped uuid is shortened (a simulated `GPU-sim-host-0` is short already)."""
    match = _UUID.match(value)
    return value if match is None else f"{match.group(1)}-{match.group(2)}…"


def table_width(columns: Sequence[Column]) -> int:
    """The width rich's default box takes: a border and one space each side per column."""
    return sum(c.width + 3 for c in columns) + 1


def fit(columns: Sequence[Column], width: int) -> list[Column]:
    """The columns that fit `width`, shortened or dropped as little as possible."""
    kept = list(columns)
    if table_width(kept) <= width:
        return kept
    kept = [_shortened(c) for c in kept]
    while table_width(kept) > width:
        droppable = [c for c in kept if c.priority > 0]
        if not droppable:
            break  # nothing more may go: narrower than the essentials, rich wraps the rest
        kept.remove(max(droppable, key=lambda c: c.priority))
    return kept


def _shortened(column: Column) -> Column:
    """The column in its short form, unless that would make two different cells alike."""
    if column.shorten is None:
        return column
    cells = [column.shorten(v) for v in column.cells]
    if len(set(cells)) != len(set(column.cells)):
        return column  # ambiguous short forms: keep the full values (and drop sooner)
    return replace(column, cells=cells)


def terminal_width(stream: TextIO) -> int:
    """The terminal's width, or `$COLUMNS`, or 200 off a terminal."""
    if stream.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def render(
    title: str,
    columns: Sequence[Column],
    *,
    caption: str | None = None,
    stream: TextIO | None = None,
    width: int | None = None,
) -> None:
    """Print the table, fitted to the terminal; no cell is ever read as rich markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = sys.stdout if stream is None else stream
    width = terminal_width(out) if width is None else width
    shown = fit(columns, width)
    table = Table(title=Text(title), caption=caption)
    for column in shown:
        table.add_column(column.header, no_wrap=True)
    rows = len(columns[0].cells) if columns else 0
    for row in range(rows):
        table.add_row(*(Text(c.cells[row], style=c.styles[row] if c.styles else "") for c in shown))
    Console(file=out, width=width).print(table)
