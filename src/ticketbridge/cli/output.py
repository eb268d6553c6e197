"""How every listing prints: a table for people, JSON or CSV for scripts.

A table takes the terminal's width and folds long text; identifiers never fold or get cut.  When
the output is piped (not a terminal) the table is as wide as its rows, so nothing is cut either.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["Column", "Format", "FormatOption", "emit", "plain"]


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="table for people, json or csv for scripts."),
]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: the row key, its heading, and whether it is an identifier (never folded)."""

    key: str
    heading: str = ""
    ident: bool = False

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


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column | str],
    fmt: Format = Format.table,
    *,
    empty: str | None = None,
    console: Console | None = None,
) -> None:
    """Print ``rows`` in ``fmt``.  JSON and CSV carry every key of the columns, unformatted."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    if fmt is Format.json:
        data = [{c.key: plain(row.get(c.key)) for c in cols} for row in rows]
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([c.key for c in cols])
        for row in rows:
            value = [plain(row.get(c.key)) for c in cols]
            writer.writerow(["" if v is None else v for v in value])
        return
    out = console or terminal()
    if not rows:
        if empty:
            out.print(empty, highlight=False)
        return
    table = Table(*(), show_lines=False)
    for c in cols:
        if c.ident:
            table.add_column(c.title, no_wrap=True, overflow="ignore")
        else:
            table.add_column(c.title, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c.key)) for c in cols))
    out.print(table)


def terminal() -> Console:
    """stdout as a console: the terminal's width, or unbounded when piped."""
    if sys.stdout.isatty():
        return Console(soft_wrap=True)
    return Console(width=100_000, soft_wrap=True, force_terminal=False)
