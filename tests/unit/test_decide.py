"""Pure decisions: routing, visibility policy, echo detection, rendering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketbridge.config import ConnectionConfig, NotePolicy
from ticketbridge.domain import (
    Contact,
    Note,
    StatusClass,
    Ticket,
    TicketRef,
    Visibility,
    marker_for,
)
from ticketbridge.engine import decide

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def conn(**kw: object) -> ConnectionConfig:
    base: dict[str, object] = {
        "name": "c",
        "psa": "cw",
        "vendor": "sn",
        "routing": {"queues": ["Vendor Escalations"]},
        "accounts": {"ACME": {"company": "abc"}},
    }
    base.update(kw)
    return ConnectionConfig.model_validate(base)


def ticket(**kw: object) -> Ticket:
    base: dict[str, object] = {
        "ref": TicketRef("cw", "42", "42"),
        "summary": "Link down",
        "queue": "Vendor Escalations",
        "status": "New",
        "priority": "Priority 1",
        "company": "ACME",
    }
    base.update(kw)
    return Ticket(**base)  # type: ignore[arg-type]


def note(text: str = "hello", vis: Visibility = Visibility.PUBLIC) -> Note:
    return Note("cw", "42", "7", text, vis, AT, author="Jo Tech")


class TestRoute:
    def test_board_routes(self):
        """A ticket on a routed board is routed."""
        assert decide.Route("routed") == decide.route(conn(), ticket())

    def test_other_board_does_not(self):
        """A ticket on another board is not."""
        assert decide.route(conn(), ticket(queue="Service Desk")) is None

    def test_status_type_priority_filters(self):
        """Status, type and priority lists narrow the route; empty lists allow anything."""
        c = conn(
            routing={
                "queues": ["Vendor Escalations"],
                "statuses": ["New"],
                "types": ["Outage"],
                "priorities": ["Priority 1"],
            }
        )
        assert decide.route(c, ticket(type="Outage")) is not None
        assert decide.route(c, ticket(type="Outage", status="Closed")) is None
        assert decide.route(c, ticket(type="Request")) is None
        assert decide.route(c, ticket(type="Outage", priority="Priority 3")) is None

    def test_closed_ticket_is_not_routed(self):
        """A closed ticket never opens a vendor ticket."""
        assert decide.route(conn(), ticket(status_class=StatusClass.CLOSED)) is None

    def test_link_field_makes_a_manual_link(self):
        """A vendor number in the link field links by hand, whatever the board."""
        r = decide.route(conn(), ticket(queue="Other", external_ref=" INC0010042 "))
        assert decide.Route("manual", "INC0010042") == r

    def test_link_field_ignored_when_off(self):
        """With link_by_field off the link field is ignored."""
        c = conn(routing={"queues": ["X"], "link_by_field": False})
        assert decide.route(c, ticket(queue="Other", external_ref="INC1")) is None


class TestAccounts:
    def test_mapped_company(self):
        """A mapped company gets its vendor account fields."""
        assert decide.account_for(conn(), "ACME") == {"company": "abc"}

    def test_unmapped_company_without_default(self):
        """An unmapped company is not routed when there is no default account."""
        assert decide.account_for(conn(), "GLOBEX") is None

    def test_default_account(self):
        """The default account catches unmapped companies when configured."""
        c = conn(default_account={"company": "shared"})
        assert decide.account_for(c, "GLOBEX") == {"company": "shared"}


class TestVisibility:
    @given(st.sampled_from(list(Visibility)), st.sampled_from(["public", "private", "skip"]))
    def test_internal_never_leaves_by_default(self, vis, psa_public):
        """With the default psa_internal, nothing but PUBLIC notes ever leaves the PSA."""
        policy = NotePolicy(psa_public=psa_public)
        target = decide.psa_note_target(policy, vis)
        if vis is not Visibility.PUBLIC:
            assert target is None

    def test_unknown_counts_as_internal(self):
        """UNKNOWN visibility is treated as internal, also when internal notes may go."""
        policy = NotePolicy(psa_internal="private")
        assert decide.psa_note_target(policy, Visibility.UNKNOWN) == Visibility.INTERNAL

    def test_public_can_go_private_or_stay(self):
        """psa_public maps public notes to public, private or nothing."""
        assert decide.psa_note_target(NotePolicy(), Visibility.PUBLIC) == Visibility.PUBLIC
        assert (
            decide.psa_note_target(NotePolicy(psa_public="private"), Visibility.PUBLIC)
            == Visibility.INTERNAL
        )
        assert decide.psa_note_target(NotePolicy(psa_public="skip"), Visibility.PUBLIC) is None

    def test_vendor_notes_land_internal_by_default(self):
        """Vendor public and private notes both land as PSA internal notes by default."""
        p = NotePolicy()
        assert decide.vendor_note_target(p, Visibility.PUBLIC) == Visibility.INTERNAL
        assert decide.vendor_note_target(p, Visibility.INTERNAL) == Visibility.INTERNAL
        assert (
            decide.vendor_note_target(NotePolicy(vendor_private="skip"), Visibility.INTERNAL)
            is None
        )


SECRET = "an installation secret, 32 chars"


class TestEcho:
    def test_signed_marker_means_echo(self):
        """A note carrying a marker signed with our secret for this ticket is ours."""
        signed = marker_for("0123456789abcdef", SECRET, "cw", "42")
        assert decide.is_echo(note(f"text\n\n{signed}"), SECRET)

    def test_ledger_and_author_mean_echo(self):
        """A note the ledger says we wrote, or one by the integration user, is ours."""
        n = note("plain words")
        assert decide.is_echo(n, SECRET, frozenset({n.id}))
        assert decide.is_echo(Note("cw", "42", "9", "plain", Visibility.PUBLIC, AT, by_us=True), "")

    def test_plain_note_is_not_echo(self):
        """A note without the marker is someone's."""
        assert not decide.is_echo(note("[tb:not-a-key]"), SECRET)

    def test_text_shaped_like_a_marker_is_a_persons_note(self):
        """An old unsigned marker in a quoted reply or a pasted log, a marker copied from
        another ticket, or one signed with another secret: a person's note."""
        assert not decide.is_echo(note("> earlier:\n> [tb:0123456789abcdef]"), SECRET)
        copied = marker_for("0123456789abcdef", SECRET, "cw", "43")
        assert not decide.is_echo(note(f"see {copied}"), SECRET)
        forged = marker_for("0123456789abcdef", "someone else's secret!!", "cw", "42")
        assert not decide.is_echo(note(f"see {forged}"), SECRET)
        assert not decide.is_echo(note(f"see {forged}"), "")

    @given(st.text(max_size=200))
    def test_rendered_notes_carry_no_marker(self, body):
        """Whatever a note says, its rendered copy carries no visible marker (ours are
        recognised by ledger and author) and renders the same every time."""
        n = note(body)
        rendered = decide.render_for_vendor(n, "ConnectWise PSA", "42")
        assert rendered == decide.render_for_vendor(n, "ConnectWise PSA", "42")
        assert not decide.is_echo(note(rendered), SECRET)
        assert decide.render_for_psa(n, "ServiceNow", "INC1").endswith(body.strip())


class TestDraft:
    def test_draft_carries_client_and_contact(self):
        """The vendor ticket gets summary, description, client company, contact, priority."""
        c = conn(priority_map={"psa_to_vendor": {"Priority 1": "1"}})
        t = ticket(
            description="Router dead.",
            company_name="Acme Dental",
            contact=Contact("Dana", "dana@acme.example", "555"),
        )
        d = decide.draft_for(c, t, {"company": "abc"}, "ConnectWise PSA")
        assert d.summary == "Link down"
        assert d.priority == "1"
        assert d.description.startswith("Router dead.")
        assert "Client: Acme Dental (ACME)" in d.description
        assert "Contact: Dana <dana@acme.example> 555" in d.description
        assert "MSP ticket: ConnectWise PSA #42" in d.description

    @pytest.mark.parametrize("prio", [None, "Priority 9"])
    def test_unmapped_priority_is_left_to_the_vendor(self, prio):
        """A priority with no mapping sends none (the vendor's default applies)."""
        d = decide.draft_for(conn(), ticket(priority=prio), {}, "PSA")
        assert d.priority is None
