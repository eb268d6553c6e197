"""The load benchmark end to end with tiny figures: its counts add up (no times asserted)."""

from __future__ import annotations

import asyncio

import pytest
from bench.load import Options, Row, counts_consistent, markdown, run_all

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_tiny_bench_counts_add_up() -> None:
    opts = Options(
        stores=["sqlite"],
        rates=[5],
        duration=2.0,
        max_notes=20,
        senders=4,
        tickets=2,
        polling=[1],
        poll_cycles=1,
        poll_interval=1.0,
        drain_cap=40.0,
        stall=15.0,
    )
    result = asyncio.run(run_all(opts, lambda line: None))
    rows: list[Row] = result["stores"]["sqlite"]
    assert [r.name for r in rows] == ["5/s", "max", "poll N=1"]
    assert [r.sent for r in rows] == [10, 20, 2]
    assert counts_consistent(rows) == []
    for row in rows:
        # the daemon loses nothing and copies nothing twice
        assert (row.delivered, row.lost, row.duplicates, row.errors) == (row.sent, 0, 0, 0)
        assert row.calls["cw_read"] > 0  # the daemon reads the PSA ticket's notes
        assert row.calls["sn_write"] >= row.delivered  # one write per note at least
    relay: Row = result["relay"]
    assert relay.sent == 20
    assert relay.delivered + relay.lost == relay.sent
    # one GET of the newest note and one PATCH per callback, nothing else
    assert relay.calls["cw_read"] == relay.calls["sn_write"] > 0
    assert relay.calls["cw_write"] == relay.calls["sn_read"] == 0
    table = markdown(result, opts)
    assert "### ticketbridge, sqlite store" in table
    assert table.count("| relay |") == 1
