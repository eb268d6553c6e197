"""Actions become *intents*: plain frozen values the engine turns into outbox rows.

Nothing here writes anywhere.  For each run of a chain step,
:func:`render_run` renders the step's actions against the facts and returns

* ``intents`` -- :class:`MovePsaTicket`, :class:`SetVendorPriority`,
  :class:`SetVendorField`, :class:`AddNote`, :class:`SendEmail`,
  :class:`Notify`, :class:`OpenLessonsLearned`: each with an idempotency
  ``key`` derived from (link, rule, epoch, step, repetition, action index
  [, recipient]) so a re-planned run after a crash maps to the same outbox rows;
* ``failed`` -- :class:`ActionFailed`: a template that failed to render, a
  contact or tier that no longer resolves.  A failure never raises;
* ``skipped`` -- :class:`ActionSkipped`: an action with nothing to do (a move
  to a tier the ticket is already at or beyond, a client update with no news).

Templates are Jinja2 in a :class:`~jinja2.sandbox.SandboxedEnvironment` with
``StrictUndefined`` and no autoescaping (the output is plain text): attribute
access to internals (``__class__``, ``mro``, ...) is refused, unknown names
fail instead of rendering as empty.  The variables a template sees are listed
in :data:`TEMPLATE_NAMES`; all are plain dicts, strings, numbers and datetimes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import SandboxedEnvironment

from ticketbridge.domain import Side, Visibility, idempotency_key
from ticketbridge.rules.chains import DueRun, RunKey, StepSnapshot
from ticketbridge.rules.conditions import Subject
from ticketbridge.rules.facts import Facts, MetricFacts
from ticketbridge.rules.models import (
    ACTION_MODELS,
    Action,
    ActionKind,
    ClientUpdateAction,
    Directory,
    EmailVendorAction,
    LessonsLearnedAction,
    MovePsaTicketAction,
    NotifyAction,
    SecretRef,
    SetVendorFieldAction,
    SetVendorPriorityAction,
    VendorNoteAction,
    format_duration,
)

__all__ = [
    "DEFAULT_CLIENT_UPDATE",
    "DEFAULT_LESSONS_DETAILS",
    "DEFAULT_LESSONS_SUMMARY",
    "ESCALATING_ACTIONS",
    "MAX_TEXT",
    "TEMPLATE_NAMES",
    "ActionFailed",
    "ActionSkipped",
    "AddNote",
    "Intent",
    "MovePsaTicket",
    "Notify",
    "OpenLessonsLearned",
    "RunOutcome",
    "SendEmail",
    "SetVendorField",
    "SetVendorPriority",
    "base_context",
    "check_template",
    "describe_action",
    "render_run",
    "render_template",
    "run_context",
    "template_context",
]

#: Rendered text longer than this is cut (with a marker): a runaway loop cannot flood a ticket.
MAX_TEXT = 32_000

#: Action types whose firing counts as an escalation of the link (their kind says so).
ESCALATING_ACTIONS = frozenset(
    name for name, model in ACTION_MODELS.items() if model.action_kind is ActionKind.ESCALATION
)

#: The variables every template may use.
TEMPLATE_NAMES = frozenset(
    {"ticket", "vendor", "link", "sla", "rule", "run", "since", "now", "business_hours"}
)

DEFAULT_CLIENT_UPDATE = """\
Status update on "{{ ticket.summary }}" ({{ vendor.system }} ticket {{ vendor.number or "pending" }}).
{% if vendor.latest_public_note %}Latest from the vendor ({{ vendor.latest_public_note.at | dt }}): \
{{ vendor.latest_public_note.text }}
{% else %}The vendor has not posted an update yet.
{% endif %}Vendor status: {{ vendor.status or "unknown" }}. We keep following up and will update you again."""

DEFAULT_LESSONS_SUMMARY = (
    "Lessons learned: {{ ticket.summary }} ({{ vendor.system }} {{ vendor.number or '' }})"
)
DEFAULT_LESSONS_DETAILS = """\
PSA ticket {{ ticket.number or ticket.id }} for {{ ticket.company or "unknown company" }} closed.
Vendor: {{ vendor.system }} ticket {{ vendor.number or "-" }}, escalated: \
{{ "yes" if link.escalated else "no" }}, supplier SLA breached: {{ "yes" if link.breached else "no" }}.
{% if sla %}{% for name, m in sla.items() %}{{ name }}: {{ m.status }}{% if m.breached %} (breached){% endif %}
{% endfor %}{% endif %}Review: what went wrong with the third party, what to change, follow-up actions."""


# -- intents ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """Something a rule wants done.  ``key`` is the write's idempotency key."""

    key: str
    link_id: str
    rule: str
    run: RunKey
    action_index: int
    #: What the action that made this intent does (an escalation, a client update...).
    action_kind: ActionKind

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def escalates(self) -> bool:
        return self.action_kind is ActionKind.ESCALATION


@dataclass(frozen=True, slots=True, kw_only=True)
class MovePsaTicket(Intent):
    """Set the PSA ticket's queue / status / assignee / group (``None``: leave alone)."""

    queue: str | None = None
    status: str | None = None
    assignee: str | None = None
    group: str | None = None
    tier: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVendorPriority(Intent):
    priority: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVendorField(Intent):
    field: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AddNote(Intent):
    """A note on the PSA ticket (a client update) or on the vendor ticket."""

    side: Side
    text: str
    visibility: Visibility


@dataclass(frozen=True, slots=True, kw_only=True)
class SendEmail(Intent):
    """An e-mail to the vendor (SMTP)."""

    to: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify(Intent):
    """A message to one of the MSP's people: ``target`` is an address or a webhook URL (reference)."""

    channel: str
    recipient: str
    target: str | SecretRef
    text: str
    subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenLessonsLearned(Intent):
    summary: str
    details: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionFailed(Intent):
    """An action that could not be prepared; ``message`` says why, for the operator."""

    action_type: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSkipped(Intent):
    action_type: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunOutcome:
    intents: tuple[Intent, ...] = ()
    failed: tuple[ActionFailed, ...] = ()
    skipped: tuple[ActionSkipped, ...] = ()


# -- templates --------------------------------------------------------------------------------------


def _fmt_dt(value: Any, tz: str = "UTC") -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    local = value.astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or tz)


def _fmt_duration(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    return "" if value is None else str(value)


def _fmt_pct(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value * 100:.0f}%"
    return "" if value is None else str(value)


@functools.lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=False,
    )
    env.filters["dt"] = _fmt_dt
    env.filters["duration"] = _fmt_duration
    env.filters["pct"] = _fmt_pct
    return env


@functools.lru_cache(maxsize=2048)
def _template(text: str) -> jinja2.Template:
    return _environment().from_string(text)


def check_template(text: str) -> list[tuple[str, str]]:
    """Problems of a template as ``(message, hint)``: syntax errors and unknown variables."""
    env = _environment()
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [
            (
                f"template syntax error on line {exc.lineno}: {exc.message}",
                "check the {{ }} / {% %} pairs",
            )
        ]
    unknown = sorted(meta.find_undeclared_variables(ast) - TEMPLATE_NAMES)
    if unknown:
        return [
            (
                f"template uses unknown variable(s): {', '.join(unknown)}",
                "available: " + ", ".join(sorted(TEMPLATE_NAMES)),
            )
        ]
    try:
        _template(text)
    except jinja2.TemplateError as exc:
        return [(f"template does not compile: {exc}", "")]
    return []


class RenderError(Exception):
    """A template failed at render time (carries a readable message)."""


def render_template(text: str, context: Mapping[str, Any]) -> str:
    """Render ``text`` in the sandbox; :class:`RenderError` with a readable message on failure."""
    env = _environment()
    template = _template(text)
    variables: dict[str, Any] = (
        context if isinstance(context, dict) and "range" in context else {**env.globals, **context}
    )
    try:
        # ``Template.render`` without its per-call copy of the globals: the context built
        # by :func:`template_context` already holds them.
        out = env.concat(template.root_render_func(template.new_context(variables, shared=True)))
    except jinja2.exceptions.SecurityError as exc:
        raise RenderError(f"template refused by the sandbox: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template uses something undefined: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"template error: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a template must never crash the engine
        raise RenderError(f"template failed: {type(exc).__name__}: {exc}") from None
    if len(out) > MAX_TEXT:
        out = out[: MAX_TEXT - 20] + "\n... (truncated)"
    return str(out)


def _metric(m: MetricFacts) -> dict[str, Any]:
    return {
        "status": m.status,
        "elapsed": m.elapsed,
        "target": m.target,
        "remaining": m.remaining,
        "elapsed_fraction": m.elapsed_fraction,
        "breached": m.breached,
        "due_at": m.due_at,
    }


def base_context(subject: Subject) -> dict[str, Any]:
    """The variables templates see for one link, without the run (build once per link)."""
    f = subject.facts
    psa, link = f.psa, f.link
    note = link.latest_public_note
    silent_since = link.vendor_last_public_update_at or link.linked_at
    return {
        **_environment().globals,
        "now": f.now,
        "business_hours": f.business_hours,
        "ticket": {
            "system": link.psa_name or link.psa_system,
            "system_key": link.psa_system,
            "id": psa.id,
            "number": psa.number,
            "summary": psa.summary,
            "priority": psa.priority,
            "queue": psa.queue,
            "type": psa.type,
            "company": psa.company,
            "status": psa.status,
            "status_class": psa.status_class,
            "subtype": psa.subtype,
            "priority_rank": psa.priority_rank,
            "assignee": psa.assignee,
            "group": psa.group,
            "tier": subject.tier,
            "created_at": psa.created_at,
            "age": f.age,
            "closed": psa.closed,
        },
        "vendor": {
            # what clients and vendors read: the display name, never the config key
            "system": link.vendor_name or link.vendor_system,
            "system_key": link.vendor_system,
            "ticket_id": link.vendor_ticket_id,
            "number": link.vendor_ticket_number,
            "status": link.vendor_status,
            "status_class": link.vendor_class,
            "priority": link.vendor_priority,
            "ball": link.ball.value,
            "last_public_update_at": link.vendor_last_public_update_at,
            "last_update_at": link.vendor_last_update_at,
            "silent_for": None if silent_since is None else f.now - silent_since,
            "latest_public_note": None
            if note is None
            else {"text": note.text, "author": note.author, "at": note.at},
            "resolved": link.resolved,
        },
        "link": {
            "id": link.link_id,
            "connection": link.connection,
            "escalation_level": subject.escalation_level,
            "escalated": subject.escalated,
            "breached": f.breached,
            "acknowledged": f.acknowledged,
        },
        "sla": None
        if f.sla is None
        else {
            "acknowledgment": _metric(f.sla.acknowledgment),
            "update_cadence": _metric(f.sla.update_cadence),
            "resolution": _metric(f.sla.resolution),
        },
        "rule": {"name": "", "description": ""},
        "run": None,
        "since": None,
    }


def run_context(
    base: Mapping[str, Any], *, rule: str, description: str = "", run: DueRun | None = None
) -> dict[str, Any]:
    """``base`` plus the rule and the run."""
    return {
        **base,
        "rule": {"name": rule, "description": description},
        "run": None
        if run is None
        else {
            "key": str(run.key),
            "step": run.key.step,
            "repetition": run.key.repetition,
            "epoch": run.key.epoch,
            "due_at": run.due_at,
            "label": run.label,
        },
        "since": None if run is None else run.previous_due_at,
    }


def template_context(
    subject: Subject,
    *,
    rule: str = "",
    description: str = "",
    run: DueRun | None = None,
) -> dict[str, Any]:
    """The variables templates see for one link and run (plain data only).

    :data:`TEMPLATE_NAMES` lists them; Jinja2's own globals (``range``,
    ``dict``, ``namespace``...) are included.
    """
    return run_context(base_context(subject), rule=rule, description=description, run=run)


# -- rendering actions --------------------------------------------------------------------------------


def describe_action(action: Action) -> str:
    """A one-line summary of an action, for explanations."""
    if isinstance(action, MovePsaTicketAction):
        parts = [f"tier {action.to_tier!r}"] if action.to_tier else []
        for name in ("queue", "status", "assignee", "group"):
            value = getattr(action, name)
            if value is not None:
                parts.append(f"{name} {value!r}")
        return "move PSA ticket to " + ", ".join(parts)
    if isinstance(action, SetVendorPriorityAction):
        return f"set vendor priority {action.priority!r}"
    if isinstance(action, SetVendorFieldAction):
        return f"set vendor field {action.field!r}"
    if isinstance(action, VendorNoteAction):
        return f"{action.visibility} note on the vendor ticket"
    if isinstance(action, EmailVendorAction):
        return "e-mail the vendor's " + ", ".join(action.to)
    if isinstance(action, NotifyAction):
        return f"notify {', '.join(action.to)} by {action.channel}"
    if isinstance(action, ClientUpdateAction):
        every = f" every {format_duration(action.every)}" if action.every else ""
        return f"client-visible status update on the PSA ticket{every}"
    return "open a lessons-learned record"


class _Renderer:
    """Renders the actions of one run; collects intents, failures and skips."""

    def __init__(
        self,
        subject: Subject,
        directory: Directory,
        run: DueRun,
        context: Mapping[str, Any],
    ) -> None:
        self.subject = subject
        self.directory = directory
        self.run = run
        self.context = context
        self.link_id = subject.facts.link_id
        #: Whose run this is, by the systems' own identities (never the local link id):
        #: a fresh or restored store keys the same run's writes the same way.
        self.identity = (subject.facts.link.connection, subject.facts.psa.id)
        self.intents: list[Intent] = []
        self.failed: list[ActionFailed] = []
        self.skipped: list[ActionSkipped] = []
        self.kinds: dict[int, ActionKind] = {}

    def _base(self, index: int, *extra: str) -> dict[str, Any]:
        return {
            "key": idempotency_key(*self.identity, str(self.run.key), str(index), *extra),
            "link_id": self.link_id,
            "rule": self.run.key.rule,
            "run": self.run.key,
            "action_index": index,
            "action_kind": self.kinds[index],
        }

    def fail(self, index: int, action_type: str, message: str) -> None:
        self.failed.append(
            ActionFailed(**self._base(index), action_type=action_type, message=message)
        )

    def skip(self, index: int, action_type: str, reason: str) -> None:
        self.skipped.append(
            ActionSkipped(**self._base(index), action_type=action_type, reason=reason)
        )

    def text(self, template: str) -> str:
        return render_template(template, self.context)

    def render(self, index: int, action: Action) -> None:
        self.kinds[index] = action.action_kind
        try:
            self._render(index, action)
        except RenderError as exc:
            self.fail(index, action.type, str(exc))

    def _render(self, index: int, action: Action) -> None:
        f = self.subject.facts
        base = self._base(index)
        if isinstance(action, MovePsaTicketAction):
            self._move(index, action)
        elif isinstance(action, SetVendorPriorityAction):
            if not f.link.vendor_linked:
                self.skip(index, action.type, "no vendor ticket yet")
                return
            self.intents.append(SetVendorPriority(**base, priority=action.priority))
        elif isinstance(action, SetVendorFieldAction):
            if not f.link.vendor_linked:
                self.skip(index, action.type, "no vendor ticket yet")
                return
            value = self.text(action.value)
            self.intents.append(SetVendorField(**base, field=action.field, value=value))
        elif isinstance(action, VendorNoteAction):
            if not f.link.vendor_linked:
                self.skip(index, action.type, "no vendor ticket yet")
                return
            self.intents.append(
                AddNote(
                    **base,
                    side=Side.VENDOR,
                    text=self.text(action.template),
                    visibility=Visibility(action.visibility),
                )
            )
        elif isinstance(action, EmailVendorAction):
            to = self.directory.vendor_addresses(f.link.vendor_system, action.to)
            if not to:
                self.fail(
                    index,
                    action.type,
                    f"no address for {', '.join(action.to)} of vendor {f.link.vendor_system!r}",
                )
                return
            self.intents.append(
                SendEmail(
                    **base, to=to, subject=self.text(action.subject), body=self.text(action.body)
                )
            )
        elif isinstance(action, NotifyAction):
            self._notify(index, action)
        elif isinstance(action, ClientUpdateAction):
            note = f.link.latest_public_note
            since = self.run.previous_due_at
            if (
                action.only_if_new_progress
                and since is not None
                and (note is None or note.at <= since)
            ):
                self.skip(index, action.type, "no new public progress from the vendor")
                return
            text = self.text(action.template or DEFAULT_CLIENT_UPDATE)
            self.intents.append(
                AddNote(**base, side=Side.PSA, text=text, visibility=Visibility.PUBLIC)
            )
        elif isinstance(action, LessonsLearnedAction):
            summary = self.text(action.summary or DEFAULT_LESSONS_SUMMARY)
            details = self.text(action.template or DEFAULT_LESSONS_DETAILS)
            self.intents.append(OpenLessonsLearned(**base, summary=summary, details=details))

    def _move(self, index: int, action: MovePsaTicketAction) -> None:
        d = self.directory
        queue, status, assignee, group = action.queue, action.status, action.assignee, action.group
        tier_name: str | None = None
        if action.to_tier is not None:
            current = d.tier_index(self.subject.tier)
            if action.to_tier.casefold() == "next":
                if current is None:
                    self.fail(index, action.type, "the ticket's current tier is unknown")
                    return
                if current + 1 >= len(d.tiers):
                    self.skip(index, action.type, f"already at the last tier ({self.subject.tier})")
                    return
                target = current + 1
            else:
                found = d.tier_index(action.to_tier)
                if found is None:
                    self.fail(index, action.type, f"unknown tier {action.to_tier!r}")
                    return
                target = found
            if action.only_up and current is not None and target <= current:
                self.skip(
                    index,
                    action.type,
                    f"ticket is already at {self.subject.tier!r}, not below {d.tiers[target].name!r}",
                )
                return
            tier = d.tiers[target]
            tier_name = tier.name
            queue = queue or tier.queue
            group = group or tier.group
            assignee = assignee or tier.assignee
            status = status or tier.status
        self.intents.append(
            MovePsaTicket(
                **self._base(index),
                queue=queue,
                status=status,
                assignee=assignee,
                group=group,
                tier=tier_name,
            )
        )

    def _notify(self, index: int, action: NotifyAction) -> None:
        text = self.text(action.template)
        subject = None if action.subject is None else self.text(action.subject)
        if action.channel == "email" and subject is None:
            subject = f"[{self.run.key.rule}] {self.subject.facts.psa.summary}"[:200]
        people = self.directory.contacts.people
        n = 0
        for name in action.to:
            person = people.get(name)
            targets: tuple[str | SecretRef, ...]
            if person is None:
                if action.channel == "email" and "@" in name:
                    targets = (name,)
                else:
                    self.fail(index, action.type, f"unknown contact {name!r}")
                    continue
            else:
                targets = person.target(action.channel)
            if not targets:
                self.fail(index, action.type, f"{name!r} has no {action.channel} address")
                continue
            for target in targets:
                self.intents.append(
                    Notify(
                        **self._base(index, str(n)),
                        channel=action.channel,
                        recipient=name,
                        target=target,
                        text=text,
                        subject=subject,
                    )
                )
                n += 1


def render_run(
    run: DueRun,
    step: StepSnapshot,
    subject: Subject | Facts,
    directory: Directory,
    *,
    description: str = "",
    context: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """The intents of one run of ``step``; never raises for a bad template or contact."""
    subj = subject if isinstance(subject, Subject) else Subject(subject)
    if context is None:
        context = template_context(subj, rule=run.key.rule, description=description, run=run)
    renderer = _Renderer(subj, directory, run, context)
    for index, action in step.actions:
        renderer.render(index, action)
    return RunOutcome(tuple(renderer.intents), tuple(renderer.failed), tuple(renderer.skipped))
