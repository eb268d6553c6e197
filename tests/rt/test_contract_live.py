"""The contract suite against a real Request Tracker instead of its simulator.

The suite's checks run unchanged with a driver whose people act on the real RT.  Checks
that inject faults or read the simulator's request log, and those that set the
simulator's clock (same-second records), cannot apply to a real server: they are skipped
with that reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.test_contract import *
from tests.contract.test_contract import pytestmark as _contract_marks
from tests.rt.live import LiveRtDriver
from ticketbridge.adapters.rt.local import LocalRt

pytestmark = [*_contract_marks, pytest.mark.rt]

FAULTS = "injects faults or reads the request log: only the simulator can"
CLOCK = "needs the simulator's clock (records within one second)"
NOT_APPLICABLE = {
    "test_listing_is_inclusive_with_same_second_records": CLOCK,
    "test_same_second_notes_read_back_in_source_order": CLOCK,
    "test_a_no_op_update_sends_no_write": FAULTS,
    "test_an_uncertain_note_write_is_found_by_key_and_not_repeated": FAULTS,
    "test_an_uncertain_create_is_found_by_key_and_not_repeated": FAULTS,
    "test_a_2xx_that_proves_nothing_leaves_the_note_once": FAULTS,
    "test_an_ignored_field_write_is_refused_naming_the_field": FAULTS,
    "test_an_ignored_public_note_write_is_refused_naming_the_field": FAULTS,
    "test_429_retry_after_is_honoured": FAULTS,
    "test_a_long_retry_after_on_a_write_is_handed_back_not_slept": FAULTS,
    "test_name_lookup_knows_what_tickets_carry_and_writes_nothing": FAULTS,
    "test_the_suite_names_no_product": "checks the suite's own source, not a product",
}
#: Capabilities whose check counts write requests in the simulator's log.
LOGGED = {"set_status", "set_priority", "close", "attachments", "webhooks", "assign", "set_fields"}


@pytest.fixture
def kind() -> str:
    return "rt"


@pytest.fixture
async def driver(live_rt: LocalRt, request: pytest.FixtureRequest) -> AsyncIterator[LiveRtDriver]:
    check = getattr(request.node, "originalname", request.node.name)
    if check in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[check])
    callspec = getattr(request.node, "callspec", None)
    capability = callspec.params.get("capability") if callspec else None
    if check == "test_each_capability_works_or_is_refused" and str(capability) in LOGGED:
        pytest.skip(f"{capability}: {FAULTS}")
    live = LiveRtDriver(live_rt)
    yield live
    await live.stop()
