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
import functools
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


#: Control characters a cell may not send to the terminal (escape sequences in a vendor's
#: text could move the cursor or retitle the window): dropped, a tab made a space.
_CONTROLS = {c: None for c in (*range(32), 127) if c != 10} | {9: " "}


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "\n".join(_cell(v) for v in value) or "-"
    return str(value).translate(_CONTROLS)


def _width(text: str) -> int:
    """Terminal cells the text takes (ASCII: one a character, the common case made fast)."""
    return len(text) if text.isascii() else cell_len(text)


def _longest_line(text: str) -> int:
    if "\n" not in text:
        return _width(text)
    return max((_width(line) for line in text.splitlines()), default=0)


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
    _table(out, shown, cells, widths, title)


# rich's HEAVY_HEAD box, drawn here: rich's Table takes milliseconds a row, and a listing
# of every link an MSP ever had runs to tens of thousands of rows.
_TOP = ("┏", "━", "┳", "┓")
_HEAD = ("┃", "┃", "┃")
_RULE = ("┡", "━", "╇", "┩")
_BODY = ("│", "│", "│")
_BOTTOM = ("└", "─", "┴", "┘")


def _fold(text: str, width: int, ident: bool, console: Console) -> list[str]:
    """A cell's lines at ``width``: text wrapped at words (a longer word folded), an
    identifier never."""
    lines = text.splitlines() or [""]
    if ident:
        return lines
    folded: list[str] = []
    for line in lines:
        if _width(line) <= width:
            folded.append(line)
        else:
            folded.extend(_wrap(line, width, console))
    return folded


@functools.lru_cache(maxsize=4096)
def _wrap(line: str, width: int, console: Console) -> tuple[str, ...]:
    """rich's word wrap of one line (statuses and names repeat down a listing: cached)."""
    wrapped = Text(line).wrap(console, width, overflow="fold")
    return tuple(part.plain.rstrip() for part in wrapped)


def _pad(text: str, width: int, justify: Justify) -> str:
    gap = max(0, width - _width(text))
    if justify == "right":
        return " " * gap + text
    if justify == "center":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


def _rule(widths: Sequence[int], parts: tuple[str, str, str, str]) -> str:
    left, fill, cross, right = parts
    return left + cross.join(fill * (w + 2) for w in widths) + right


def _lines(
    row: Sequence[str],
    columns: Sequence[Column],
    widths: Sequence[int],
    bars: tuple[str, str, str],
    console: Console,
) -> list[str]:
    """One table row as printed lines, every cell folded to its column's width."""
    cells = [
        _fold(value, w, c.ident, console) for value, c, w in zip(row, columns, widths, strict=True)
    ]
    height = max(len(lines) for lines in cells)
    left, inner, right = bars
    out = []
    for n in range(height):
        parts = [
            _pad(lines[n] if n < len(lines) else "", w, c.justify)
            for lines, c, w in zip(cells, columns, widths, strict=True)
        ]
        out.append(f"{left} " + f" {inner} ".join(parts) + f" {right}")
    return out


def _table(
    out: Console,
    columns: Sequence[Column],
    cells: Sequence[Sequence[str]],
    widths: Sequence[int],
    title: str | None,
) -> None:
    head = Text()
    total = sum(w + 3 for w in widths) + 1
    if title:
        head.append(_pad(title, total, "center").rstrip() + "\n", style="italic")
    head.append(_rule(widths, _TOP) + "\n")
    titles = [c.title for c in columns]
    for line in _lines(titles, columns, widths, _HEAD, out):
        head.append(line + "\n", style="bold")
    head.append(_rule(widths, _RULE))
    out.print(head, soft_wrap=True, highlight=False)
    body = [line for row in cells for line in _lines(row, columns, widths, _BODY, out)]
    body.append(_rule(widths, _BOTTOM))
    out.file.write("\n".join(body) + "\n")
    out.file.flush()


def _records(
    out: Console, columns: Sequence[Column], cells: Sequence[Sequence[str]], title: str | None
) -> None:
    """Rows too wide for the terminal as a table: one record each, a line per column,
    the value folded to the terminal's width (an identifier is never folded: a line holding
    one longer than the terminal is left for the terminal to wrap)."""
    label = max(cell_len(c.title) for c in columns)
    room = max(1, out.width - label - 2)
    lines: list[str] = [title] if title else []
    for r in cells:
        if lines:
            lines.append("")
        for c, value in zip(columns, r, strict=True):
            for n, part in enumerate(_fold(value, room, c.ident, out)):
                lines.append(f"{_pad(c.title if n == 0 else '', label, 'left')}  {part}".rstrip())
    out.file.write("\n".join(lines) + "\n")
    out.file.flush()


def terminal() -> Console:
    """stdout as a console: the terminal's width, or unbounded when piped."""
    console = Console(soft_wrap=True)
    if console.is_terminal:
        return console
    return Console(width=100_000, soft_wrap=True, force_terminal=False)
