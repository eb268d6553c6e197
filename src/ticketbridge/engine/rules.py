"""Escalation rules on links: facts in, intents out, every write through the outbox.

For each link the engine keeps the rules' state (running chains with the
snapshot they started with, runs done) and the next instant a step is due: a
durable timer.  An evaluation happens in the same transaction as the decision
or sweep that caused it, and its intents become outbox rows keyed by
(link, rule, step, repetition, action): after a restart or an outage every
overdue step runs exactly once, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from ticketbridge import operations as outbox
from ticketbridge.adapters import field_aliases
from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.config import TicketBridgeConfig
from ticketbridge.domain import Side, StatusClass, with_aliases
from ticketbridge.engine.linking import ADOPTED
from ticketbridge.engine.sla import SlaKeeper
from ticketbridge.log import ticket_context
from ticketbridge.metrics import Metrics
from ticketbridge.rules import (
    ActionFailed,
    AddNote,
    Evaluation,
    Explanation,
    Facts,
    Intent,
    LinkFacts,
    MovePsaTicket,
    Notify,
    OpenLessonsLearned,
    PsaFacts,
    RuleSet,
    SendEmail,
    SetVendorField,
    SetVendorPriority,
    VendorNote,
    evaluate,
    explain,
    sla_facts_from_snapshot,
)
from ticketbridge.rules.engine import next_ready_at, next_turn_at
from ticketbridge.rules.models import SecretRef
from ticketbridge.sla.calendar import BusinessCalendar
from ticketbridge.sla.clock import SlaState, snapshot
from ticketbridge.sla.models import Ball
from ticketbridge.store import closeout as closeout_store
from ticketbridge.store import repo
from ticketbridge.store import rules as rule_store
from ticketbridge.store import sla as sla_store
from ticketbridge.store.plan import VENDOR_SEEN
from ticketbridge.store.rows import EventRow, LinkRow
from ticketbridge.store.rules import RuleInputs

__all__ = ["ESCALATION_EVENT", "RuleKeeper"]

#: The event recorded for each rule run that escalated the link (``escalation_step`` is
#: recorded for every run, whatever its actions do).
ESCALATION_EVENT = "rule_escalated"

log = structlog.get_logger("ticketbridge.rules")

#: Rule evaluations per transaction of a timer sweep or a full pass.
BATCH = 200

#: The events the rules read of a link: its vendor's notes and status changes (facts),
#: whether its vendor ticket was read, whether it was adopted on a fresh store.
FACT_EVENTS = ("vendor_note", "vendor_status_changed", VENDOR_SEEN, ADOPTED)


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed


def _calendar_turns_at(calendar: BusinessCalendar, now: datetime) -> datetime | None:
    """When the calendar next opens or closes after ``now`` (within a fortnight)."""
    for start, end in calendar.open_intervals(now, now + timedelta(days=14)):
        if start > now:
            return start
        if end > now:
            return end
    return None


class RuleKeeper:
    """Builds facts for links, evaluates the rules and turns intents into outbox rows."""

    def __init__(
        self,
        config: TicketBridgeConfig,
        ruleset: RuleSet | None,
        adapters: Mapping[str, TicketAdapter],
        metrics: Metrics,
        sla: SlaKeeper,
        enqueue: Callable[..., bool],
    ) -> None:
        self.config = config
        self.ruleset = ruleset
        self.adapters = adapters
        self.metrics = metrics
        self.sla = sla
        self._enqueue = enqueue

    @property
    def enabled(self) -> bool:
        return self.ruleset is not None and bool(self.ruleset.rules)

    # -- facts -----------------------------------------------------------------------
    def facts(
        self, c: Connection, link: LinkRow, now: datetime, inputs: RuleInputs | None = None
    ) -> Facts:
        # snapshots stored before the neutral fields used the PSA's own words
        snap_psa: Mapping[str, Any] = with_aliases(link.psa_snapshot or {}, field_aliases())
        psa = PsaFacts(
            id=link.psa_ticket_id,
            number=snap_psa.get("number") or link.psa_number,
            summary=snap_psa.get("summary") or "",
            priority=snap_psa.get("priority") or link.psa_priority,
            queue=snap_psa.get("queue"),
            type=snap_psa.get("type"),
            company=snap_psa.get("company") or link.company,
            status=snap_psa.get("status") or link.psa_status,
            assignee=snap_psa.get("assignee"),
            group=snap_psa.get("group"),
            subtype=snap_psa.get("subtype"),
            status_class=snap_psa.get("status_class"),
            priority_rank=snap_psa.get("priority_rank"),
            created_at=_dt(snap_psa.get("created_at")) or link.created_at,
            closed=bool(snap_psa.get("closed")) or link.state == "closed",
        )
        events = repo.link_events(c, link.id) if inputs is None else inputs.events.get(link.id, [])
        last_public: EventRow | None = None
        last_update: datetime | None = None
        vendor_class: str | None = None
        for row in events:
            if row.kind == "vendor_note":
                at = row.occurred_at or row.recorded_at
                last_update = at
                if (row.detail or {}).get("visibility") == "public":
                    last_public = row
            elif row.kind == "vendor_status_changed":
                vendor_class = (row.detail or {}).get("status_class")
                if not (row.detail or {}).get("by_us"):
                    last_update = row.occurred_at or row.recorded_at
        latest = None
        if last_public is not None:
            detail = last_public.detail or {}
            latest = VendorNote(
                text=detail.get("excerpt") or "",
                at=last_public.occurred_at or last_public.recorded_at,
                author=detail.get("author"),
            )
        sla_facts = None
        ball = Ball.VENDOR
        breached = False
        clock = sla_store.clock_for(c, link.id) if inputs is None else inputs.clocks.get(link.id)
        business_hours: bool | None = None
        business_hours_until: datetime | None = None
        found = self.sla.policy(link) if clock is not None else None
        if clock is not None and found is not None:
            snap = snapshot(SlaState.from_dict(clock.state), found[1], now)
            sla_facts = sla_facts_from_snapshot(snap)
            ball = snap.ball
            breached = bool(clock.breached) or snap.breached
            calendar = found[1].calendar
            business_hours = calendar.is_open(now)
            if not calendar.is_always_open:
                business_hours_until = _calendar_turns_at(calendar, now)
        if vendor_class is None:  # recorded before status classes: the adapter's map
            adapter = self.adapters.get(link.vendor_system)
            known = adapter.status_class_of(link.vendor_status) if adapter is not None else None
            vendor_class = None if known is None else known.value
        resolved = vendor_class in (StatusClass.RESOLVED, StatusClass.CLOSED)
        return Facts(
            now=now,
            psa=psa,
            link=LinkFacts(
                link_id=str(link.id),
                connection=link.connection,
                vendor_system=link.vendor_system,
                vendor_name=self.config.display_name(link.vendor_system),
                psa_system=link.psa_system,
                psa_name=self.config.display_name(link.psa_system),
                vendor_ticket_id=link.vendor_ticket_id,
                vendor_ticket_number=link.vendor_number,
                vendor_status=link.vendor_status,
                vendor_class=vendor_class,
                vendor_priority=link.vendor_priority,
                ball=ball,
                linked_at=link.created_at,
                vendor_last_public_update_at=latest.at if latest else None,
                vendor_last_update_at=last_update,
                latest_public_note=latest,
                breached=breached,
                resolved=resolved,
            ),
            sla=sla_facts,
            business_hours=business_hours,
            business_hours_until=business_hours_until,
        )

    # -- evaluation ----------------------------------------------------------------------
    def state_of(self, c: Connection, link_id: int) -> Mapping[str, Any] | None:
        row = rule_store.rule_state(c, link_id)
        return None if row is None else dict(row.state)

    def evaluate_batch(self, c: Connection, link_ids: Sequence[int], now: datetime) -> int:
        """Evaluate the rules of several links in the caller's transaction, their links,
        states, clocks and events read for the whole batch at once; how many links exist."""
        if self.ruleset is None or not self.ruleset.rules or not link_ids:
            return 0
        inputs = rule_store.rule_inputs(c, link_ids, FACT_EVENTS)
        for link_id in link_ids:
            link = inputs.links.get(link_id)
            if link is not None:
                with ticket_context(link):
                    self.evaluate(c, link, now, inputs)
        return len(inputs.links)

    def evaluate(
        self,
        c: Connection,
        link: LinkRow,
        now: datetime,
        inputs: RuleInputs | None = None,
        held: bool | None = None,
    ) -> Evaluation | None:
        """Evaluate a link's rules and act on the result, in the caller's transaction.

        ``inputs``: the link's stored state, clock and events, read beforehand for a batch
        (``evaluate_batch``); read here when not given.  A link a client closeout holds
        is left alone: its chains and client updates stopped (``held``: already known by
        the caller, read here when not)."""
        if self.ruleset is None or not self.ruleset.rules:
            return None
        if link.vendor_ticket_id is None and link.state == "creating":
            return None
        if held is None:
            held = link.id in inputs.held if inputs is not None else closeout_store.is_held(c, link)
        if held:
            # the client is being (or was) closed out: its chains and client updates stopped
            return None

        def has_event(kind: str) -> bool:
            if inputs is None:
                return repo.has_event(c, link.id, kind)
            return inputs.has_event(link.id, kind)

        if link.vendor_ticket_id is not None and not has_event(VENDOR_SEEN):
            # a linked vendor ticket not read yet: its facts (status, progress) are unknown,
            # and a link re-established on a fresh store would act on nothing
            return None
        stored = rule_store.rule_state(c, link.id) if inputs is None else inputs.states.get(link.id)
        state = None if stored is None else dict(stored.state)
        # a link re-established on a fresh or restored store: what is due at once was done
        # before the store was lost (its rule state with it), so it is adopted, not redone
        adopt = stored is None and has_event(ADOPTED)
        facts = self.facts(c, link, now, inputs)
        result = evaluate(self.ruleset, facts, state, now)
        # the link's timer: the next chain step, the moment time alone starts a rule, or
        # (on an open or watched link) the moment time alone may change any condition:
        # a rules pass re-evaluates only the links whose timer has come
        turn = (
            next_turn_at(self.ruleset, facts, result.state)
            if link.state in ("open", "watching")
            else None
        )
        due = [
            t
            for t in (result.next_due_at, next_ready_at(self.ruleset, facts, result.state), turn)
            if t is not None
        ]
        next_due = min(due) if due else None
        moved = stored is None or stored.next_due_at != next_due
        self._apply(c, link, result, next_due, moved, now, adopt=adopt)
        return result

    def explain(self, c: Connection, link: LinkRow, now: datetime) -> Explanation | None:
        if self.ruleset is None:
            return None
        return explain(self.ruleset, self.facts(c, link, now), self.state_of(c, link.id), now)

    def due(self, c: Connection, now: datetime) -> list[int]:
        return rule_store.due_rule_links(c, now, limit=BATCH)

    def _apply(
        self,
        c: Connection,
        link: LinkRow,
        result: Evaluation,
        next_due: datetime | None,
        moved: bool,
        now: datetime,
        *,
        adopt: bool = False,
    ) -> None:
        if result.changed or moved:
            rule_store.save_rule_state(
                c, link.id, state=result.state, next_due_at=next_due, now=now
            )
        for start in result.started:
            log.info("rule_chain_started", rule=start.rule, epoch=start.epoch)
            repo.add_event(
                c,
                "rule_chain_started",
                now=now,
                link_id=link.id,
                connection=link.connection,
                rule=start.rule,
                epoch=start.epoch,
            )
        for stop in result.stopped:
            log.info("rule_chain_stopped", rule=stop.rule, reason=stop.reason)
            repo.add_event(
                c,
                "rule_chain_stopped",
                now=now,
                link_id=link.id,
                connection=link.connection,
                rule=stop.rule,
                reason=stop.reason,
            )
        for run in result.runs:
            log.info(
                "rule_fired",
                rule=run.key.rule,
                step=run.key.step,
                repetition=run.key.repetition,
                label=run.label,
                due_at=run.due_at.isoformat() if run.due_at else None,
                adopted=adopt,
            )
            repo.add_event(
                c,
                "escalation_step",
                now=now,
                link_id=link.id,
                connection=link.connection,
                occurred_at=run.due_at,
                rule=run.key.rule,
                step=run.key.step,
                repetition=run.key.repetition,
                label=run.label,
            )
            self.metrics.rule_runs.labels(run.key.rule).inc()
        # an escalation of the link: a run that fired at least one escalation action (a
        # client update, a notification or a note is a step, not an escalation)
        escalations: dict[str, int] = {}
        for intent in result.intents:
            if intent.escalates:
                escalations[str(intent.run)] = escalations.get(str(intent.run), 0) + 1
        for run in [] if adopt else result.runs:
            if str(run.key) in escalations:
                log.info(
                    "rule_escalated",
                    rule=run.key.rule,
                    step=run.key.step,
                    actions=escalations[str(run.key)],
                )
                repo.add_event(
                    c,
                    ESCALATION_EVENT,
                    now=now,
                    link_id=link.id,
                    connection=link.connection,
                    occurred_at=run.due_at,
                    rule=run.key.rule,
                    step=run.key.step,
                    repetition=run.key.repetition,
                    label=run.label,
                    actions=escalations[str(run.key)],
                )
        if adopt and result.intents:
            repo.add_event(
                c,
                "rule_runs_adopted",
                now=now,
                link_id=link.id,
                connection=link.connection,
                runs=sorted({str(intent.run) for intent in result.intents}),
                intents=len(result.intents),
            )
            log.info("rule_runs_adopted", link_id=link.id, intents=len(result.intents))
        previous = {run.key: run.previous_due_at for run in result.runs}
        for intent in [] if adopt else result.intents:
            self._intent(c, link, intent, now, previous.get(intent.run))
        for failed in result.failed:
            repo.add_event(
                c,
                "rule_action_failed",
                now=now,
                link_id=link.id,
                connection=link.connection,
                rule=failed.rule,
                action=failed.action_type,
                message=failed.message,
            )
            log.error(
                "rule_action_failed",
                link_id=link.id,
                rule=failed.rule,
                action=failed.action_type,
                message=failed.message,
            )
        for warning in result.warnings:
            log.warning("rule_warning", link_id=link.id, detail=warning)

    def _intent(
        self,
        c: Connection,
        link: LinkRow,
        intent: Intent,
        now: datetime,
        previous_due_at: datetime | None = None,
    ) -> None:
        key = intent.key
        base: dict[str, Any] = {"link_id": link.id, "key": key, "now": now}
        op: outbox.Operation | None = None
        target_system = link.psa_system
        if isinstance(intent, MovePsaTicket):
            move = outbox.UpdateTicket.of(
                queue=intent.queue,
                status=intent.status,
                assignee=intent.assignee,
                group=intent.group,
            )
            op = None if move.change.is_empty() else move
        elif isinstance(intent, SetVendorPriority):
            target_system = link.vendor_system
            op = outbox.UpdateTicket.of(priority=intent.priority)
        elif isinstance(intent, SetVendorField):
            target_system = link.vendor_system
            op = outbox.UpdateTicket.of(fields={intent.field: intent.value})
        elif isinstance(intent, AddNote):
            target_system = link.psa_system if intent.side is Side.PSA else link.vendor_system
            # a fresh or restored store may not know it was written: looked up first, as a
            # note of ours with these words written since the step's previous run was due
            op = outbox.AddNote(intent.text.rstrip(), intent.visibility, not_before=previous_due_at)
            base["uncertain"] = True
        elif isinstance(intent, SendEmail):
            to = ", ".join(intent.to)
            target_system = "notify"
            op = outbox.Notify("email", intent.body, intent.subject, recipient=to, target=to)
        elif isinstance(intent, Notify):
            target = intent.target
            target_system = "notify"
            op = outbox.Notify(
                intent.channel,
                intent.text,
                intent.subject or "",
                recipient=intent.recipient,
                target={target.kind: target.name} if isinstance(target, SecretRef) else target,
            )
        elif isinstance(intent, OpenLessonsLearned):
            if rule_store.open_lessons_learned(
                c,
                link.id,
                rule=intent.rule,
                key=key,
                summary=intent.summary,
                details=intent.details,
                now=now,
            ):
                repo.add_event(
                    c,
                    "lessons_learned_opened",
                    now=now,
                    link_id=link.id,
                    connection=link.connection,
                    rule=intent.rule,
                    summary=intent.summary,
                )
                log.info("lessons_learned_opened", link_id=link.id, rule=intent.rule)
        elif isinstance(intent, ActionFailed):  # pragma: no cover - listed in failed
            return
        else:
            repo.add_event(
                c,
                "rule_intent_skipped",
                now=now,
                link_id=link.id,
                intent=intent.kind,
                rule=intent.rule,
            )
        if op is not None:
            self._enqueue(
                c, target_system=target_system, operation=op.op, payload=op.to_json(), **base
            )
