"""Actions: each type becomes the right intent; templates render in a sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from ticketbridge.domain import Side, Visibility
from ticketbridge.rules import (
    ActionFailed,
    AddNote,
    MovePsaTicket,
    Notify,
    OpenLessonsLearned,
    SendEmail,
    SetVendorField,
    SetVendorPriority,
    evaluate,
)
from ticketbridge.rules.actions import MAX_TEXT, check_template, render_template
from ticketbridge.rules.engine import Evaluation
from ticketbridge.rules.facts import Facts, VendorNote
from ticketbridge.rules.models import SecretRef

from .helpers import T0, M, facts, ruleset


def fire(actions_yaml: str, f: Facts | None = None) -> Evaluation:
    """Evaluate a one-off rule with the given actions on a P1 vendor ticket."""
    rs = ruleset(f"rules:\n  - name: r\n    actions:\n{actions_yaml}")
    return evaluate(rs, f or facts(), None, T0)


class TestEachActionType:
    def test_move_psa_ticket_to_a_tier(self) -> None:
        """A move to a tier carries the tier's board, team and status."""
        f = facts(psa={"queue": "Service Desk", "group": None})
        ev = fire("      - {type: move_psa_ticket, to_tier: Tier 2}", f)
        (intent,) = ev.intents
        assert isinstance(intent, MovePsaTicket)
        assert (intent.queue, intent.group, intent.assignee, intent.status, intent.tier) == (
            "Service Desk",
            "Tier 2",
            None,
            None,
            "Tier 2",
        )

    def test_move_psa_ticket_explicit_fields_and_next(self) -> None:
        """Explicit fields win over the tier's; `next` is the tier after the current one."""
        f = facts(psa={"queue": "Service Desk", "group": "Tier 2"})
        ev = fire(
            "      - {type: move_psa_ticket, to_tier: next, assignee: jsmith, status: In Progress}",
            f,
        )
        (intent,) = ev.intents
        assert isinstance(intent, MovePsaTicket)
        assert (intent.tier, intent.group, intent.assignee, intent.status) == (
            "Tier 3",
            "Tier 3",
            "jsmith",
            "In Progress",
        )

    def test_move_never_goes_down_the_ladder(self) -> None:
        """A move to a tier at or below the current one is skipped, with a reason."""
        f = facts(psa={"queue": "Service Desk", "group": "Tier 3"})
        ev = fire("      - {type: move_psa_ticket, to_tier: Tier 2}", f)
        assert ev.intents == ()
        (skip,) = ev.skipped
        assert skip.reason == "ticket is already at 'Tier 3', not below 'Tier 2'"

    def test_move_next_at_the_top_or_unknown_tier(self) -> None:
        """`next` at the last tier is skipped; from an unknown tier it fails clearly."""
        top = fire("      - {type: move_psa_ticket, to_tier: next}", facts())
        assert top.skipped[0].reason == "already at the last tier (Vendor)"
        lost = fire(
            "      - {type: move_psa_ticket, to_tier: next}", facts(psa={"queue": "Elsewhere"})
        )
        assert [f.message for f in lost.failed] == ["the ticket's current tier is unknown"]

    def test_set_vendor_priority_and_field(self) -> None:
        """Priority and field changes for the vendor ticket; the field value is a template."""
        ev = fire(
            '      - {type: set_vendor_priority, priority: "1"}\n'
            "      - {type: set_vendor_field, field: escalation, value: '{{ link.escalation_level + 2 }}'}"
        )
        prio, fld = ev.intents
        assert isinstance(prio, SetVendorPriority)
        assert prio.priority == "1"
        assert isinstance(fld, SetVendorField)
        assert (fld.field, fld.value) == ("escalation", "2")

    def test_vendor_actions_wait_for_a_vendor_ticket(self) -> None:
        """Without a vendor ticket, vendor-side actions are skipped, not failed."""
        f = facts(link={"vendor_ticket_id": None, "vendor_ticket_number": None})
        ev = fire(
            '      - {type: set_vendor_priority, priority: "1"}\n'
            "      - {type: vendor_note, template: hi}",
            f,
        )
        assert ev.intents == ()
        assert [s.reason for s in ev.skipped] == ["no vendor ticket yet", "no vendor ticket yet"]

    def test_vendor_note(self) -> None:
        """A vendor note renders its template with the requested visibility."""
        ev = fire(
            "      - {type: vendor_note, visibility: internal, "
            "template: 'Escalating {{ vendor.number }} for {{ ticket.company }}'}"
        )
        (note,) = ev.intents
        assert isinstance(note, AddNote)
        assert (note.side, note.visibility, note.text) == (
            Side.VENDOR,
            Visibility.INTERNAL,
            "Escalating INC0010001 for ACME",
        )

    def test_email_vendor_resolves_roles_and_addresses(self) -> None:
        """email_vendor looks roles up in the vendor's contacts and keeps literal addresses."""
        ev = fire(
            "      - {type: email_vendor, to: [escalation, cc@vendor.example, escalation], "
            "subject: 'Escalation {{ vendor.number }}', body: 'Please act on {{ ticket.summary }}'}"
        )
        (mail,) = ev.intents
        assert isinstance(mail, SendEmail)
        assert mail.to == ("esc@vendor.example", "cc@vendor.example")
        assert (mail.subject, mail.body) == (
            "Escalation INC0010001",
            "Please act on Mail server down",
        )

    def test_email_vendor_without_contact_fails(self) -> None:
        """A vendor system without that role gives a clear failure, not an exception."""
        ev = fire(
            "      - {type: email_vendor, to: account_manager, subject: s, body: b}",
            facts(link={"vendor_system": "jira"}),
        )
        assert ev.intents == ()
        assert [f.message for f in ev.failed] == ["no address for account_manager of vendor 'jira'"]

    def test_notify_each_channel(self) -> None:
        """notify gives one intent per address: e-mail, Teams/webhook secret refs, Slack URL."""
        ev = fire(
            "      - {type: notify, channel: email, to: boss, template: 'P1 {{ vendor.number }}'}\n"
            "      - {type: notify, channel: teams, to: desk, template: t}\n"
            "      - {type: notify, channel: slack, to: boss, template: s}\n"
            "      - {type: notify, channel: webhook, to: noc, template: w}"
        )
        got = [(n.channel, n.recipient, n.target) for n in ev.intents if isinstance(n, Notify)]
        assert got == [
            ("email", "boss", "boss@msp.example"),
            ("email", "boss", "deputy@msp.example"),
            ("teams", "desk", SecretRef("env", "TEAMS_URL")),
            ("slack", "boss", "https://hooks.slack.example/x"),
            ("webhook", "noc", SecretRef("env", "NOC_URL")),
        ]
        first = ev.intents[0]
        assert isinstance(first, Notify)
        assert first.text == "P1 INC0010001"
        assert first.subject == "[r] Mail server down"
        assert len({i.key for i in ev.intents}) == 5

    def test_client_update_summarises_vendor_progress(self) -> None:
        """A client update is a public PSA note quoting the vendor's latest public note."""
        note = VendorNote("Root cause found, patch rolling out", T0 - 5 * M, "Vendor Eng")
        ev = fire("      - {type: client_update}", facts(link={"latest_public_note": note}))
        (update,) = ev.intents
        assert isinstance(update, AddNote)
        assert (update.side, update.visibility) == (Side.PSA, Visibility.PUBLIC)
        assert "Latest from the vendor (2026-03-03 13:55 UTC): Root cause found" in update.text
        empty = fire("      - {type: client_update}")
        assert "The vendor has not posted an update yet." in empty.intents[0].text  # type: ignore[attr-defined]

    def test_lessons_learned(self) -> None:
        """lessons_learned opens a record with a rendered summary and details."""
        ev = fire(
            "      - {type: lessons_learned, summary: 'LL {{ vendor.number }}'}",
            facts(link={"breached": True}),
        )
        (record,) = ev.intents
        assert isinstance(record, OpenLessonsLearned)
        assert record.summary == "LL INC0010001"
        assert "supplier SLA breached: yes" in record.details


class TestKeys:
    def test_keys_are_stable_and_distinct(self) -> None:
        """Keys depend on the connection, the PSA ticket, rule, run and action index only
        (never the local link id): same inputs, same keys."""
        actions = (
            "      - {type: vendor_note, template: a}\n      - {type: vendor_note, template: b}"
        )
        one = fire(actions)
        again = fire(actions, facts(T0 + 3 * M))
        restored = fire(actions, facts(link={"link_id": "L2"}))
        other_ticket = fire(actions, facts(psa={"id": "other"}))
        other_connection = fire(actions, facts(link={"connection": "other"}))
        assert [i.key for i in one.intents] == [i.key for i in again.intents]
        assert [i.key for i in one.intents] == [i.key for i in restored.intents]
        assert len({i.key for i in one.intents}) == 2
        assert not {i.key for i in one.intents} & {i.key for i in other_ticket.intents}
        assert not {i.key for i in one.intents} & {i.key for i in other_connection.intents}
        assert [str(i.run) for i in one.intents] == ["r/0/0", "r/0/0"]
        assert [i.action_index for i in one.intents] == [0, 1]


class TestSandbox:
    @pytest.mark.parametrize(
        "template",
        [
            "{{ ticket.__class__ }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ now.__class__.__init__.__globals__ }}",
            "{{ ticket.items.__self__ }}",
        ],
    )
    def test_internals_are_refused(self, template: str) -> None:
        """Attribute access to Python internals is refused: a failure intent, no exception."""
        ev = fire(f"      - {{type: vendor_note, template: {template!r}}}")
        assert ev.intents == ()
        (failed,) = ev.failed
        assert isinstance(failed, ActionFailed)
        assert failed.action_type == "vendor_note"
        assert failed.message.startswith(
            ("template refused by the sandbox", "template uses something undefined")
        )

    def test_sandbox_direct(self) -> None:
        """render_template raises a readable error for unsafe access."""
        from ticketbridge.rules.actions import RenderError

        with pytest.raises(RenderError, match="unsafe"):
            render_template("{{ x.__class__.__base__ }}", {"x": 1})

    def test_undefined_fails_at_render_time(self) -> None:
        """StrictUndefined: a missing value fails the action instead of rendering blank."""
        ev = fire("      - {type: vendor_note, template: '{{ ticket.nonexistent }}'}")
        assert ev.intents == ()
        assert "nonexistent" in ev.failed[0].message

    def test_runtime_error_in_template(self) -> None:
        """An error inside a template (division by zero) is reported, other actions still fire."""
        ev = fire(
            "      - {type: vendor_note, template: '{{ 1 // 0 }}'}\n"
            "      - {type: vendor_note, template: fine}"
        )
        assert [f.message for f in ev.failed] == [
            "template failed: ZeroDivisionError: integer division or modulo by zero"
        ]
        assert [i.text for i in ev.intents if isinstance(i, AddNote)] == ["fine"]

    def test_plain_text_is_not_escaped_and_output_is_bounded(self) -> None:
        """Autoescape is off for plain text; runaway output is cut."""
        assert render_template("{{ a }}", {"a": "<b>&"}) == "<b>&"
        long = render_template("{% for i in range(50000) %}xx{% endfor %}", {})
        assert len(long) <= MAX_TEXT
        assert long.endswith("(truncated)")

    def test_filters(self) -> None:
        """dt, duration and pct format datetimes, durations and fractions."""
        ctx: dict[str, Any] = {"t": T0, "d": 95 * M, "f": 0.756}
        assert render_template("{{ t | dt('America/New_York') }}", ctx) == "2026-03-03 09:00 EST"
        assert render_template("{{ d | duration }} {{ f | pct }}", ctx) == "1h35m 76%"

    def test_check_template(self) -> None:
        """check_template reports syntax errors and unknown names, nothing for good ones."""
        assert check_template("{{ ticket.summary }} {{ vendor.number }}") == []
        assert check_template("{% if %}")[0][0].startswith("template syntax error on line 1")
        assert check_template("{{ secrets }}")[0][0] == "template uses unknown variable(s): secrets"


class TestActionKinds:
    def test_intents_carry_their_actions_kind(self) -> None:
        """Whether a run escalated is read from the kind of its actions: a client update,
        a notification and a vendor note are steps, not escalations."""
        from ticketbridge.rules.engine import escalation_from_state
        from ticketbridge.rules.models import ActionKind

        quiet = fire(
            "      - {type: client_update}\n"
            "      - {type: notify, channel: email, to: boss, template: verify with client}\n"
            "      - {type: vendor_note, template: any news}\n"
        )
        assert {i.action_kind for i in quiet.intents} == {
            ActionKind.CLIENT_UPDATE,
            ActionKind.NOTIFICATION,
            ActionKind.NOTE,
        }
        assert not any(i.escalates for i in quiet.intents)
        assert not escalation_from_state(quiet.state).escalated
        loud = fire(
            "      - {type: set_vendor_priority, priority: '1'}\n      - {type: client_update}\n"
        )
        assert [i.escalates for i in loud.intents] == [True, False]
        assert escalation_from_state(loud.state).escalated

    def test_every_action_type_has_a_kind(self) -> None:
        from ticketbridge.rules.actions import ESCALATING_ACTIONS
        from ticketbridge.rules.models import ACTION_MODELS, ACTION_TYPES, ActionKind

        assert set(ACTION_MODELS) == set(ACTION_TYPES)
        assert all(isinstance(m.action_kind, ActionKind) for m in ACTION_MODELS.values())
        assert ESCALATING_ACTIONS == {
            "move_psa_ticket",
            "set_vendor_priority",
            "set_vendor_field",
            "email_vendor",
        }
