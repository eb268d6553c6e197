"""How listings print (cli/output.emit): whole identifiers, folded text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest
from rich.cells import cell_len

from ticketbridge.cli.output import MIN_TEXT_WIDTH, Column, Format, emit, fit_widths

LONG_ID = "INC-2026-12-01-0000000000000000000000000000000042"
TEXT = "The vendor asked for the circuit id and a traceroute from the affected office " * 2
COLUMNS = [Column("id", ident=True), Column("text"), Column("state")]
ROWS = [{"id": LONG_ID, "text": TEXT, "state": "open"}]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: An environment where rich sees no terminal (a pipe), whatever the caller's shell says.
PIPE = {"TTY_COMPATIBLE": "0"}
#: A terminal of 60 columns, as rich reads it from the environment.
TERMINAL_60 = {"TTY_COMPATIBLE": "1", "COLUMNS": "60", "NO_COLOR": "1"}


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ANSI.sub("", line) for line in capsys.readouterr().out.splitlines()]


class TestPiped:
    def test_table_keeps_long_ids_and_text_on_one_line(self, capsys, monkeypatch):
        """Piped, a table is as wide as its rows: nothing folds, nothing is cut."""
        for name, value in PIPE.items():
            monkeypatch.setenv(name, value)
        emit(ROWS, COLUMNS, Format.table)
        lines = printed(capsys)
        row = next(line for line in lines if LONG_ID in line)
        assert TEXT.strip() in row
        assert "…" not in "".join(lines)

    def test_json_carries_every_column_unformatted(self, capsys):
        """JSON keeps types (ints, booleans, ISO times) and the columns the table hides."""
        at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
        emit(
            [{"id": 7, "ok": True, "at": at, "notes": ["a", "b"], "hidden": "x"}],
            [Column("id"), "ok", "at", "notes", Column("hidden", in_table=False)],
            Format.json,
        )
        assert [
            {
                "id": 7,
                "ok": True,
                "at": "2026-12-01T09:30:00+00:00",
                "notes": ["a", "b"],
                "hidden": "x",
            }
        ] == json.loads(capsys.readouterr().out)

    def test_csv_lists_are_one_json_cell_and_missing_is_empty(self, capsys):
        """A list stays one parseable cell; None is an empty cell, not "None"."""
        emit(
            [{"id": 1, "failing": ["age < 30m", "queue"], "next": None}],
            ["id", "failing", "next"],
            "csv",
        )
        rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
        assert [["id", "failing", "next"], ["1", '["age < 30m", "queue"]', ""]] == rows

    def test_empty_listing_is_an_empty_list_for_scripts(self, capsys):
        """No rows: JSON `[]`, CSV the header, the table the message."""
        emit([], COLUMNS, Format.json, empty="nothing")
        assert [] == json.loads(capsys.readouterr().out)
        emit([], COLUMNS, Format.csv, empty="nothing")
        assert "id,text,state\n" == capsys.readouterr().out
        emit([], COLUMNS, Format.table, empty="nothing")
        assert "nothing\n" == capsys.readouterr().out

    def test_cells_are_not_read_as_markup(self, capsys, monkeypatch):
        """A condition like "[FAIL] queue" prints as written (rich markup is off in cells)."""
        monkeypatch.setenv("TTY_COMPATIBLE", "0")
        emit([{"id": "1", "text": "[FAIL] [bold]queue[/bold]", "state": "x"}], COLUMNS)
        assert "[FAIL] [bold]queue[/bold]" in capsys.readouterr().out

    def test_an_unknown_format_is_refused(self):
        with pytest.raises(ValueError, match="'yaml' is not a valid Format"):
            emit(ROWS, COLUMNS, "yaml")


class TestTerminal:
    def test_60_columns_fold_text_but_not_ids(self, capsys, monkeypatch):
        """In a 60-column terminal the table fits the width: the text folds over several
        lines, the identifier stays whole on one line."""
        for name, value in TERMINAL_60.items():
            monkeypatch.setenv(name, value)
        emit(
            [{"id": "L-000000000042", "text": TEXT, "state": "open"}],
            COLUMNS,
            Format.table,
        )
        lines = printed(capsys)
        assert all(cell_len(line) <= 60 for line in lines), lines
        assert 1 == sum("L-000000000042" in line for line in lines)
        body = " ".join(line.split("│")[2].strip() for line in lines if line.count("│") == 4)
        assert " ".join(TEXT.split()) == " ".join(body.split())
        assert sum(1 for line in lines if line.count("│") == 4) > 3

    def test_rows_too_wide_for_a_table_print_as_records(self, capsys, monkeypatch):
        """Two long identifiers and text cannot share 60 columns as a table: each row is a
        record, a line per column, identifiers whole and text folded to the width."""
        for name, value in TERMINAL_60.items():
            monkeypatch.setenv(name, value)
        other = "VENDOR-CASE-" + "9" * 40
        emit(
            [{"id": LONG_ID, "text": TEXT, "vendor": other}],
            [Column("id", ident=True), Column("text"), Column("vendor", ident=True)],
        )
        lines = [line.rstrip() for line in printed(capsys)]
        assert all(cell_len(line) <= 60 for line in lines), lines
        assert f"id      {LONG_ID}" in lines
        assert f"vendor  {other}" in lines
        text = [line[8:] for line in lines if line.startswith(("text", "        "))]
        assert len(text) > 2
        assert " ".join(TEXT.split()) == " ".join(" ".join(text).split())

    def test_an_id_longer_than_the_terminal_is_never_cut(self, capsys, monkeypatch):
        """An identifier longer than the terminal is printed whole on a longer line."""
        for name, value in TERMINAL_60.items():
            monkeypatch.setenv(name, value)
        huge = "X" * 70
        emit([{"id": huge, "text": "short"}], [Column("id", ident=True), Column("text")])
        assert any(huge in line for line in printed(capsys))


class TestFitWidths:
    def test_fits_untouched(self):
        assert ([10, 20], 30) == fit_widths([10, 20], [True, False], 40)

    def test_widest_text_gives_up_first_and_ids_keep_their_width(self):
        widths, total = fit_widths([20, 100, 12], [True, False, False], 60)
        assert 20 == widths[0]
        assert 12 == widths[2]
        assert 60 == total

    def test_text_keeps_a_minimum_when_ids_take_the_room(self):
        widths, total = fit_widths([50, 100, 3], [True, False, False], 40)
        assert [50, MIN_TEXT_WIDTH, 3] == widths
        assert 50 + MIN_TEXT_WIDTH + 3 == total


class TestControlCharacters:
    def test_escape_sequences_in_a_value_never_reach_the_terminal(self, capsys, monkeypatch):
        """A vendor's text holding ESC, BEL or CR prints without them; a tab is a space."""
        monkeypatch.setenv("TTY_COMPATIBLE", "0")
        emit([{"id": "1", "text": "a\x1b]0;pwned\x07b\rc\td", "state": "x"}], COLUMNS)
        out = capsys.readouterr().out
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "\r" not in out
        assert "a]0;pwnedbc d" in out
