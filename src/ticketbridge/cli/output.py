"""How every listing prints: a table for people, JSON or CSV for scripts.

A table takes the terminal's width and folds long text; identifiers never fold or get cut.
When the columns cannot fit the terminal even with their text folded (many columns, a
narrow terminal) each row prints as a record instead, one "heading  value" line per column,
text folded to the terminal's width.  When the output is piped (not a terminal) the table
is as wide as its rows, so nothing is cut either.  "A terminal" is what rich decides: a tty, or ``TTY_COMPATIBLE=1`` /
``FORCE_COLOR`` in the environment (which is also how the tests reach the terminal path).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "Column",
    "Format",
    "FormatOption",
    "TextFormat",
    "TextFormatOption",
    "emit",
    "fit_widths",
    "plain",
    "terminal",
]


class Format(StrEnum):
    """How a listing prints."""

    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="table for people, json or csv for scripts."),
]


class TextFormat(StrEnum):
    """For commands whose natural output is prose (an explanation, a list of problems): the
    prose by default, or the same facts as rows."""

    text = "text"
    table = "table"
    json = "json"
    csv = "csv"


TextFormatOption = Annotated[
    TextFormat,
    typer.Option(
        "--format", "-f", help="text for people, table, or json or csv for scripts (as rows)."
    ),
]

Justify = Literal["left", "right", "center"]

#: A text column is not squeezed below this many characters (or its content, if shorter)
#: while an identifier needs the room: a column of one letter a line helps nobody.
MIN_TEXT_WIDTH = 8


@dataclass(frozen=True, slots=True)
class Column:
    """One column: the row key, its heading, whether it is an identifier (never folded),
    how it is aligned, and whether the table shows it (JSON and CSV always carry it)."""

    key: str
    heading: str = ""
    ident: bool = False
    justify: Justify = "left"
    in_table: bool = True

    @property
    def title(self) -> str:
        return self.heading or self.key


def plain(value: Any) -> Any:
    """A value as JSON holds it: times in ISO 8601, everything else as it is or as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for missing, JSON text for a list or mapping (one cell, parseable)."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "\n".join(_cell(v) for v in value) or "-"
    return str(value)


def _longest_line(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def fit_widths(naturals: Sequence[int], idents: Sequence[bool], room: int) -> tuple[list[int], int]:
    """Content widths for columns of ``naturals`` widths so the table fits in ``room``
    content characters: identifiers keep their whole width, text columns share the rest
    (each keeps at least :data:`MIN_TEXT_WIDTH`, or its natural width if smaller), the
    widest ones giving up the most.  Returns the widths and their sum (more than ``room``
    only when the identifiers and those minimums alone do not fit)."""
    widths = list(naturals)
    if sum(widths) <= room:
        return widths, sum(widths)
    text = [i for i, ident in enumerate(idents) if not ident]
    fixed = sum(w for w, ident in zip(widths, idents, strict=True) if ident)
    floors = {i: min(naturals[i], MIN_TEXT_WIDTH) for i in text}
    share = room - fixed
    if share <= sum(floors.values()):
        for i in text:
            widths[i] = floors[i]
        return widths, sum(widths)
    # water-filling: lower a common ceiling until the text columns fit in their share
    low, high = 0, max((naturals[i] for i in text), default=0)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(max(floors[i], min(naturals[i], mid)) for i in text) <= share:
            low = mid
        else:
            high = mid - 1
    for i in text:
        widths[i] = max(floors[i], min(naturals[i], low))
    return widths, sum(widths)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column | str],
    fmt: Format | str = Format.table,
    *,
    empty: str | None = None,
    console: Console | None = None,
    title: str | None = None,
) -> None:
    """Print ``rows`` in ``fmt``.  JSON and CSV carry every key of the columns, unformatted
    (an empty listing is ``[]`` or the header line, never a message); the table shows
    ``empty`` instead when there are no rows."""
    fmt = Format(fmt)
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    if fmt is Format.json:
        data = [{c.key: plain(row.get(c.key)) for c in cols} for row in rows]
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([c.key for c in cols])
        for row in rows:
            writer.writerow([_csv_cell(row.get(c.key)) for c in cols])
        return
    out = console or terminal()
    if not rows:
        if empty:
            out.print(empty, highlight=False, markup=False)
        return
    shown = [c for c in cols if c.in_table]
    cells = [[_cell(row.get(c.key)) for c in shown] for row in rows]
    naturals = [
        max([_longest_line(c.title)] + [_longest_line(r[i]) for r in cells])
        for i, c in enumerate(shown)
    ]
    widths = naturals
    if out.is_terminal:
        # each column has one space of padding either side, and a border left of each
        # column plus one at the right edge
        chrome = 3 * len(shown) + 1
        widths, total = fit_widths(naturals, [c.ident for c in shown], out.width - chrome)
        if total + chrome > out.width:
            _records(out, shown, cells, title)
            return
    table = Table(title=title, highlight=False)
    for c, w in zip(shown, widths, strict=True):
        if c.ident:
            table.add_column(c.title, justify=c.justify, no_wrap=True, min_width=w)
        else:
            table.add_column(c.title, justify=c.justify, overflow="fold", width=w)
    for r in cells:
        table.add_row(*(Text(x) for x in r))
    out.print(table)


def _records(
    out: Console, columns: Sequence[Column], cells: Sequence[Sequence[str]], title: str | None
) -> None:
    """Rows too wide for the terminal as a table: one record each, a line per column,
    the value folded to the terminal's width (an identifier is never folded: a line holding
    one longer than the terminal is left for the terminal to wrap)."""
    label = max(cell_len(c.title) for c in columns)
    longest_id = max(
        (_longest_line(r[i]) for r in cells for i, c in enumerate(columns) if c.ident),
        default=0,
    )
    needed = label + 2 + longest_id
    if needed > out.width:  # the same stream, wider lines
        out = Console(
            file=out.file,
            width=needed,
            soft_wrap=True,
            force_terminal=out.is_terminal,
            color_system=out.color_system,  # type: ignore[arg-type]
        )
    if title:
        out.print(Text(title, style="bold"))
    for n, r in enumerate(cells):
        if n or title:
            out.print()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for c, value in zip(columns, r, strict=True):
            text = Text(value, no_wrap=c.ident, overflow="ignore" if c.ident else "fold")
            grid.add_row(c.title, text)
        out.print(grid)


def terminal() -> Console:
    """stdout as a console: the terminal's width, or unbounded when piped."""
    console = Console(soft_wrap=True)
    if console.is_terminal:
        return console
    return Console(width=100_000, soft_wrap=True, force_terminal=False)
