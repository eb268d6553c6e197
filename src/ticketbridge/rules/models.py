"""The schema of rule files (``config/rules/*.yaml``): pydantic models, frozen, strict.

A file holds ``rules:`` and optionally ``tiers:``, ``contacts:`` and
``timezone:`` (the default zone of ``only_between`` windows in that file)::

    timezone: America/New_York
    tiers:                                  # Tier 1 -> Tier 2 -> ... in escalation order
      - {name: Tier 1, queue: Service Desk}
      - {name: Tier 2, queue: Service Desk, group: Tier 2}
    contacts:
      vendors:                              # vendor system -> role -> addresses
        vendor-desk: {escalation: [major-incident@vendor.example]}
      people:                               # MSP people and channels
        service-manager: {email: sm@msp.example, teams: {env: TEAMS_SM_URL}}
    rules:
      - name: p1-ack-breach
        when: {priority: Priority 1 - Emergency Response, sla: {metric: acknowledgment, breached: true}}
        actions:
          - {type: set_vendor_priority, priority: "1"}

A rule has ``when`` (conditions; several keys all must hold, ``any``/``all``/``not``
combine) and either ``actions`` (run once when the conditions first hold) or
``chain`` (ordered steps with waits, hours windows and repeats).

Durations use the one grammar of :mod:`ticketbridge.duration` (``"30s"``, ``"15m"``,
``"2h"``, ``"1d"``, ``"1w"``, ``"1h30m"``, ``"250ms"``, ISO 8601 ``"PT1H30M"``, or a plain
number of seconds); ``0`` means no wait.  Percentages are ``"75%"`` or ``75``.

Only the shape of one file is checked here (unknown keys, types, formats).
Cross-references (tiers, contacts, calendars, templates, unique names) are
checked by :func:`ticketbridge.rules.loader.load_rules`, which reports every
problem as ``(path, message, hint)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ticketbridge.domain import StatusClass, with_aliases
from ticketbridge.duration import format_duration, parse_duration
from ticketbridge.sla.calendar import parse_interval, weekday_index
from ticketbridge.sla.models import Ball
from ticketbridge.wording import plain_message

__all__ = [
    "ACTION_MODELS",
    "ACTION_TYPES",
    "CONDITION_KEYS",
    "STOP_REASONS",
    "Action",
    "ActionKind",
    "ClientUpdateAction",
    "Contacts",
    "Directory",
    "EmailVendorAction",
    "LessonsLearnedAction",
    "MovePsaTicketAction",
    "NotifyAction",
    "PersonContact",
    "Problem",
    "RuleModel",
    "RulesFile",
    "SecretRef",
    "SetVendorFieldAction",
    "SetVendorPriorityAction",
    "SlaCondition",
    "StepModel",
    "TierModel",
    "VendorNoteAction",
    "When",
    "WindowModel",
    "accept_field_words",
    "format_duration",
    "parse_days",
    "parse_duration",
    "parse_rules_file",
    "problems_from_validation_error",
]

#: ``(yaml_path, message, hint)`` as :class:`~ticketbridge.errors.ConfigError` expects.
Problem = tuple[str, str, str]

STOP_REASONS: tuple[str, ...] = (
    "acknowledged",
    "resolved",
    "closed",
    "ball_not_vendor",
    "conditions_false",
)
StopReason = Literal["acknowledged", "resolved", "closed", "ball_not_vendor", "conditions_false"]


def _error(message: str, hint: str = "") -> PydanticCustomError:
    safe = message.replace("{", "(").replace("}", ")")
    return PydanticCustomError("rules_config", safe, {"hint": hint})


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )


#: Products' own words for ticket fields accepted where no validation context names
#: them: rule data stored earlier (chain snapshots) is read with these.
_ACCEPTED_WORDS: dict[str, str] = {}


def accept_field_words(aliases: Mapping[str, str]) -> None:
    """Accept these product words (word -> neutral field) in rule data read without a
    context, such as chain snapshots stored by an earlier version.  The daemon sets
    them once, from the product registry."""
    _ACCEPTED_WORDS.clear()
    _ACCEPTED_WORDS.update(aliases)


class _TicketFields(_Model):
    """A model whose keys name ticket fields: a product's own words are accepted too.

    The words come from the validation context (``{"aliases": {...}}``, see
    :func:`parse_rules_file`), e.g. a PSA's word for its queue; without a
    context, from :func:`accept_field_words`.
    """

    @model_validator(mode="before")
    @classmethod
    def _product_words(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context is not None and "aliases" in info.context:
            return with_aliases(data, info.context["aliases"])
        return with_aliases(data, _ACCEPTED_WORDS)


# -- scalar types -----------------------------------------------------------------------


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _error(
            str(exc), "units: w d h m s ms, e.g. '15m', '2h', '1d', '1h30m', 'PT1H30M'"
        ) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda v: format_duration(v), return_type=str, when_used="json"),
]


def _percent(value: Any) -> float:
    text = value
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
    try:
        pct = float(text)
    except (TypeError, ValueError):
        raise _error(f"{value!r} is not a percentage", "write e.g. 75% or 75") from None
    if isinstance(value, bool) or not 0 <= pct <= 1000:
        raise _error(f"{value!r} is outside 0..1000 %", "write e.g. 50%, 75% or 100%")
    return pct


Percent = Annotated[float, BeforeValidator(_percent)]


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return (str(value),)
    return value


def _non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        raise _error("an empty list matches nothing", "omit the key to match any value")
    return value


#: One string or a non-empty list of strings.
Names = Annotated[tuple[str, ...], BeforeValidator(_one_or_many), AfterValidator(_non_empty)]
#: One status class or a list of them (see :class:`~ticketbridge.domain.StatusClass`).
Classes = Annotated[
    tuple[StatusClass, ...], BeforeValidator(_one_or_many), AfterValidator(_non_empty)
]

_DAY_GROUPS: dict[str, tuple[int, ...]] = {
    "daily": tuple(range(7)),
    "weekdays": tuple(range(5)),
    "weekends": (5, 6),
}


def parse_days(keys: Sequence[str]) -> tuple[int, ...]:
    """``["mon-fri"]``, ``["sat", "sun"]``, ``["weekdays"]`` -> sorted weekday indexes (0 = Monday)."""
    days: set[int] = set()
    for key in keys:
        text = key.strip().lower()
        if text in _DAY_GROUPS:
            days.update(_DAY_GROUPS[text])
        elif "-" in text:
            first, _, last = text.partition("-")
            a, b = weekday_index(first), weekday_index(last)
            days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
        else:
            days.add(weekday_index(text))
    return tuple(sorted(days))


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _error(
            f"unknown time zone {value!r}",
            "use an IANA name such as 'America/New_York', 'Europe/Berlin', 'UTC'",
        ) from None
    return value


TimeZone = Annotated[str, AfterValidator(_check_zone)]


# -- secrets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A value the engine reads at run time: ``{env: NAME}`` or ``{file: /run/secrets/x}``."""

    kind: Literal["env", "file"]
    name: str

    def __str__(self) -> str:
        return f"{{{self.kind}: {self.name}}}"


def _secret_or_text(value: Any) -> Any:
    if isinstance(value, SecretRef | str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((kind, name),) = value.items()
        if kind in ("env", "file") and isinstance(name, str) and name:
            return SecretRef(kind, name)
    raise _error(
        f"{value!r} is neither a URL nor a secret reference",
        "give the URL as {env: NAME} or {file: /run/secrets/name}",
    )


#: A plain string or an ``{env: NAME}`` / ``{file: PATH}`` reference.
Target = Annotated[str | SecretRef, BeforeValidator(_secret_or_text)]


# -- conditions -----------------------------------------------------------------------------

MetricName = Literal["acknowledgment", "update_cadence", "resolution"]
MetricStatusName = Literal["pending", "running", "paused", "stopped"]


class SlaCondition(_Model):
    """Tests on one SLA metric; every test given must hold."""

    metric: MetricName
    elapsed_over: Percent | None = None
    elapsed_under: Percent | None = None
    remaining_under: Duration | None = None
    breached: bool | None = None
    status: (
        Annotated[
            tuple[MetricStatusName, ...], BeforeValidator(_one_or_many), AfterValidator(_non_empty)
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _some_test(self) -> SlaCondition:
        if (
            self.elapsed_over is None
            and self.elapsed_under is None
            and self.remaining_under is None
            and self.breached is None
            and self.status is None
        ):
            raise _error(
                "an sla condition needs a test",
                "add elapsed_over: 75%, remaining_under: 10m, breached: true or status: running",
            )
        return self


def _balls(value: Any) -> Any:
    return _one_or_many(value)


class When(_TicketFields):
    """Conditions: every key given must hold; ``any``/``all``/``not`` nest."""

    priority: Names | None = None
    queue: Names | None = None
    type_: Names | None = Field(default=None, alias="type")
    company: Names | None = None
    tier: Names | None = None
    psa_status: Names | None = None
    psa_class: Classes | None = None
    subtype: Names | None = None
    assignee: Names | None = None
    group: Names | None = None
    connection: Names | None = None
    vendor: Names | None = None
    vendor_status: Names | None = None
    vendor_class: Classes | None = None
    vendor_priority: Names | None = None
    ball: (
        Annotated[tuple[Ball, ...], BeforeValidator(_balls), AfterValidator(_non_empty)] | None
    ) = None
    age_over: Duration | None = None
    age_under: Duration | None = None
    vendor_silent_for: Duration | None = None
    escalation_level_below: int | None = Field(default=None, ge=0)
    escalation_level_at_least: int | None = Field(default=None, ge=0)
    escalated: bool | None = None
    breached: bool | None = None
    closed: bool | None = None
    resolved: bool | None = None
    acknowledged: bool | None = None
    vendor_linked: bool | None = None
    vendor_escalation_api: bool | None = None
    business_hours: bool | None = None
    sla: SlaCondition | None = None
    any_: Annotated[tuple[When, ...], AfterValidator(_non_empty)] | None = Field(
        default=None, alias="any"
    )
    all_: Annotated[tuple[When, ...], AfterValidator(_non_empty)] | None = Field(
        default=None, alias="all"
    )
    not_: When | None = Field(default=None, alias="not")

    def as_data(self) -> dict[str, Any]:
        """The conditions as JSON-ready data with their YAML keys (for snapshots)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert isinstance(data, dict)
        return data


#: Condition keys as written in YAML, in evaluation order.
CONDITION_KEYS: tuple[str, ...] = tuple((f.alias or name) for name, f in When.model_fields.items())


# -- actions ----------------------------------------------------------------------------------


class ActionKind(StrEnum):
    """What an action does for the ticket, whatever its type: reports and the rules'
    escalation record read this, never the action's name.

    ``escalation`` raises the ticket's urgency (moves it up a tier, raises the vendor's
    priority or escalation field, e-mails the vendor's escalation contacts);
    ``client_update`` tells the client; ``note`` writes on the vendor ticket;
    ``notification`` tells the MSP's people; ``review`` opens a post-incident review.
    """

    ESCALATION = "escalation"
    CLIENT_UPDATE = "client_update"
    NOTE = "note"
    NOTIFICATION = "notification"
    REVIEW = "review"


class MovePsaTicketAction(_TicketFields):
    """Move the PSA ticket: to a tier (its queue/group/assignee/status), or to explicit values.

    ``to_tier: next`` means the tier after the ticket's current one.  With
    ``only_up`` (the default) a move to a tier at or below the current one is
    skipped: a rule never de-escalates.
    """

    action_kind: ClassVar[ActionKind] = ActionKind.ESCALATION
    type: Literal["move_psa_ticket"]
    to_tier: str | None = None
    queue: str | None = None
    status: str | None = None
    assignee: str | None = None
    group: str | None = None
    only_up: bool = True

    @model_validator(mode="after")
    def _something(self) -> MovePsaTicketAction:
        if not any((self.to_tier, self.queue, self.status, self.assignee, self.group)):
            raise _error(
                "move_psa_ticket moves nowhere",
                "give to_tier, or queue / status / assignee / group",
            )
        return self


class SetVendorPriorityAction(_Model):
    """Set the vendor ticket's priority, in the vendor's own values (see its adapter)."""

    action_kind: ClassVar[ActionKind] = ActionKind.ESCALATION
    type: Literal["set_vendor_priority"]
    priority: str = Field(min_length=1)


class SetVendorFieldAction(_Model):
    """Set a field of the vendor ticket by the vendor's name for it; ``value`` is a template."""

    action_kind: ClassVar[ActionKind] = ActionKind.ESCALATION
    type: Literal["set_vendor_field"]
    field: str = Field(min_length=1)
    value: str


class VendorNoteAction(_Model):
    """Post a templated note on the vendor ticket."""

    action_kind: ClassVar[ActionKind] = ActionKind.NOTE
    type: Literal["vendor_note"]
    template: str = Field(min_length=1)
    visibility: Literal["public", "internal"] = "public"


class EmailVendorAction(_Model):
    """E-mail the vendor: ``to`` is a role of the vendor's contacts or an address."""

    action_kind: ClassVar[ActionKind] = ActionKind.ESCALATION
    type: Literal["email_vendor"]
    to: Names = ("escalation",)
    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)


class NotifyAction(_Model):
    """Tell the MSP's people: e-mail, Microsoft Teams, Slack or a generic webhook."""

    action_kind: ClassVar[ActionKind] = ActionKind.NOTIFICATION
    type: Literal["notify"]
    channel: Literal["email", "teams", "slack", "webhook"]
    to: Names
    template: str = Field(min_length=1)
    subject: str | None = None


class ClientUpdateAction(_Model):
    """A client-visible note on the PSA ticket summarising the vendor's latest public progress.

    With ``every`` it is a cadence: it posts when its step runs and again every
    ``every`` until the chain stops.  ``only_if_new_progress`` skips a post when
    the vendor said nothing new since the previous one.
    """

    action_kind: ClassVar[ActionKind] = ActionKind.CLIENT_UPDATE
    type: Literal["client_update"]
    every: Duration | None = None
    template: str | None = None
    only_if_new_progress: bool = False


class LessonsLearnedAction(_Model):
    """Open a lessons-learned record (post-incident review)."""

    action_kind: ClassVar[ActionKind] = ActionKind.REVIEW
    type: Literal["lessons_learned"]
    summary: str | None = None
    template: str | None = None


_ActionModel = (
    MovePsaTicketAction
    | SetVendorPriorityAction
    | SetVendorFieldAction
    | VendorNoteAction
    | EmailVendorAction
    | NotifyAction
    | ClientUpdateAction
    | LessonsLearnedAction
)
Action = Annotated[_ActionModel, Field(discriminator="type")]

#: Action type (the YAML ``type``) -> its model.
ACTION_MODELS: dict[str, type[_ActionModel]] = {
    "move_psa_ticket": MovePsaTicketAction,
    "set_vendor_priority": SetVendorPriorityAction,
    "set_vendor_field": SetVendorFieldAction,
    "vendor_note": VendorNoteAction,
    "email_vendor": EmailVendorAction,
    "notify": NotifyAction,
    "client_update": ClientUpdateAction,
    "lessons_learned": LessonsLearnedAction,
}

ACTION_TYPES: tuple[str, ...] = tuple(ACTION_MODELS)

#: Which fields of each action type hold a Jinja2 template.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "move_psa_ticket": (),
    "set_vendor_priority": (),
    "set_vendor_field": ("value",),
    "vendor_note": ("template",),
    "email_vendor": ("subject", "body"),
    "notify": ("template", "subject"),
    "client_update": ("template",),
    "lessons_learned": ("summary", "template"),
}


# -- chains -------------------------------------------------------------------------------------


def _hours(value: str) -> str:
    try:
        parse_interval(value)
    except ValueError as exc:
        raise _error(str(exc), "write 'HH:MM-HH:MM', e.g. '08:00-18:00' or '22:00-06:00'") from None
    return value


def _days(value: tuple[str, ...]) -> tuple[str, ...]:
    try:
        parse_days(value)
    except ValueError as exc:
        raise _error(
            str(exc), "use mon..sun, a range like 'mon-fri', or daily / weekdays / weekends"
        ) from None
    return value


class WindowModel(_Model):
    """``only_between``: local hours (and weekdays, time zone), or a named business calendar."""

    hours: (
        Annotated[
            tuple[Annotated[str, AfterValidator(_hours)], ...],
            BeforeValidator(_one_or_many),
            AfterValidator(_non_empty),
        ]
        | None
    ) = None
    days: (
        Annotated[tuple[str, ...], BeforeValidator(_one_or_many), AfterValidator(_days)] | None
    ) = None
    timezone: TimeZone | None = None
    calendar: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"hours": data}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> WindowModel:
        if self.calendar is not None:
            if self.hours is not None or self.days is not None or self.timezone is not None:
                raise _error(
                    "give either a calendar or hours/days/timezone, not both",
                    "a calendar already has its hours and time zone",
                )
        elif self.hours is None:
            raise _error("a window needs hours or a calendar", "e.g. only_between: '08:00-18:00'")
        elif self.days is not None and not parse_days(self.days):
            raise _error("the window is open on no day", "list weekdays, e.g. days: mon-fri")
        return self


class StepModel(_Model):
    """One step of a chain.

    ``after`` is the wait from the *previous step's first run* (the chain start
    for the first step).  The step runs once and then ``repeat`` more times,
    ``every`` apart.  ``only_between`` defers a run due outside the window to
    the window's next opening.  ``when`` (optional) is checked when the run
    is due: if it fails the run is recorded as skipped and its actions do not fire.
    ``catch_up: latest`` coalesces repetitions that fell due together (after an
    outage) into one run of the latest; the default ``all`` runs each of them.
    """

    after: Duration = timedelta(0)
    only_between: WindowModel | None = None
    repeat: int = Field(default=0, ge=0, le=1000)
    every: Duration | None = None
    when: When | None = None
    catch_up: Literal["all", "latest"] = "all"
    actions: Annotated[tuple[Action, ...], AfterValidator(_non_empty)]

    @model_validator(mode="after")
    def _waits(self) -> StepModel:
        if self.repeat and self.every is None:
            raise _error(
                f"repeat: {self.repeat} needs 'every'", "say how far apart, e.g. every: 30m"
            )
        if self.every is not None and not self.repeat:
            raise _error("'every' without 'repeat' never applies", "add repeat: N or drop every")
        return self


class RuleModel(_Model):
    """One escalation rule."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    enabled: bool = True
    when: When = Field(default_factory=When)
    actions: Annotated[tuple[Action, ...], AfterValidator(_non_empty)] | None = None
    chain: Annotated[tuple[StepModel, ...], AfterValidator(_non_empty)] | None = None
    stop_when: Annotated[tuple[StopReason, ...], BeforeValidator(_one_or_many)] = ("resolved",)
    rearm: bool = False

    @model_validator(mode="after")
    def _actions_or_chain(self) -> RuleModel:
        if (self.actions is None) == (self.chain is None):
            raise _error(
                "a rule needs exactly one of 'actions' and 'chain'",
                "'actions' fire once when the conditions first hold; 'chain' has timed steps",
            )
        return self

    @property
    def steps(self) -> tuple[StepModel, ...]:
        """The chain; a rule with ``actions`` is a chain of one immediate step."""
        if self.chain is not None:
            return self.chain
        assert self.actions is not None
        return (StepModel(actions=self.actions),)


# -- tiers and contacts ----------------------------------------------------------------------------


class TierModel(_TicketFields):
    """A support tier: where a ticket of this tier sits in the PSA.

    A ticket is in the most specific tier matching its queue (and group/assignee
    where the tier names them).  Moving a ticket *to* a tier sets its queue,
    and its group, assignee and status where given.
    """

    name: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    group: str | None = None
    assignee: str | None = None
    status: str | None = None


class PersonContact(_Model):
    """An MSP person or channel: where ``notify`` can reach them."""

    email: Names | None = None
    teams: Target | None = None
    slack: Target | None = None
    webhook: Target | None = None

    def target(self, channel: str) -> tuple[str | SecretRef, ...]:
        if channel == "email":
            return self.email or ()
        value: str | SecretRef | None = getattr(self, channel)
        return () if value is None else (value,)


class Contacts(_Model):
    """``vendors``: vendor system -> role (``escalation``, ``account_manager``...) -> addresses."""

    vendors: dict[str, dict[str, Names]] = Field(default_factory=dict)
    people: dict[str, PersonContact] = Field(default_factory=dict)


class RulesFile(_Model):
    """One rule file."""

    timezone: TimeZone = "UTC"
    tiers: tuple[TierModel, ...] = ()
    contacts: Contacts = Field(default_factory=Contacts)
    rules: tuple[RuleModel, ...] = ()

    @field_validator("rules", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        return () if value is None else value


@dataclass(frozen=True, slots=True)
class Directory:
    """Tiers (in escalation order) and contacts: what actions resolve names against."""

    tiers: tuple[TierModel, ...] = ()
    contacts: Contacts = field(default_factory=Contacts)

    def tier_index(self, name: str | None) -> int | None:
        """Position of tier ``name`` (0 = the first tier), ignoring case; ``None`` if unknown."""
        if name is None:
            return None
        wanted = name.casefold()
        for i, tier in enumerate(self.tiers):
            if tier.name.casefold() == wanted:
                return i
        return None

    def tier_for(self, queue: str | None, group: str | None, assignee: str | None) -> str | None:
        """The tier a PSA ticket is in: the most specific tier matching its queue
        (and group/assignee)."""
        if queue is None:
            return None
        best: TierModel | None = None
        best_score = -1
        for tier in self.tiers:
            if tier.queue.casefold() != queue.casefold():
                continue
            score = 0
            if tier.group is not None:
                if group is None or tier.group.casefold() != group.casefold():
                    continue
                score += 1
            if tier.assignee is not None:
                if assignee is None or tier.assignee.casefold() != assignee.casefold():
                    continue
                score += 1
            if score > best_score:
                best, best_score = tier, score
        return None if best is None else best.name

    def vendor_addresses(self, vendor_system: str, names: Sequence[str]) -> tuple[str, ...]:
        """Addresses for ``names``: an address stays, a role is looked up for that vendor."""
        roles = self.contacts.vendors.get(vendor_system, {})
        out: list[str] = []
        for name in names:
            found = (name,) if "@" in name else roles.get(name, ())
            out.extend(a for a in found if a not in out)
        return tuple(out)


# -- problems -----------------------------------------------------------------------------------------


def _render_loc(loc: Sequence[int | str]) -> str:
    out = ""
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        previous = parts[i - 1] if i else None
        if part in ACTION_TYPES and isinstance(previous, int):
            continue  # the discriminated-union tag pydantic adds after a list index
        if part in ("[key]", "function-after", "function-before", "function-plain"):
            continue
        if part in ("str", "SecretRef", "tagged-union[...]") or part.startswith(
            ("union[", "tuple[", "function-")
        ):
            continue
        out += f".{part}" if out else str(part)
    return out or "(root)"


def _hint(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if "hint" in ctx:
        return str(ctx["hint"])
    if kind == "extra_forbidden":
        return ""
    if kind == "missing":
        return "this key is required"
    if kind == "literal_error":
        return f"one of: {ctx.get('expected', '')}"
    return ""


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """``(path, message, hint)`` per error; ``prefix`` is e.g. ``"config/rules/x.yaml: "``."""
    from difflib import get_close_matches

    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _render_loc(loc)
        msg = plain_message(err)
        hint = _hint(err)
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            msg = f"unknown key {name!r}"
            known = _known_keys(loc)
            close = get_close_matches(name, known, n=1) if known else []
            if close:
                hint = f"did you mean {close[0]!r}?"
            elif known:
                hint = "known keys: " + ", ".join(known)
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid":
            tag = (err.get("ctx") or {}).get("tag", "")
            path += ".type"
            msg = f"unknown action type {tag!r}"
            hint = "one of: " + ", ".join(ACTION_TYPES)
        elif kind == "union_tag_not_found":
            path += ".type"
            msg = "an action needs a type"
            hint = "one of: " + ", ".join(ACTION_TYPES)
        key = (path, msg)
        if key in seen:
            continue
        seen.add(key)
        problems.append((f"{prefix}{path}", msg, hint))
    return problems


_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "when": CONDITION_KEYS,
    "any": CONDITION_KEYS,
    "all": CONDITION_KEYS,
    "not": CONDITION_KEYS,
    "sla": tuple(SlaCondition.model_fields),
    "chain": tuple(StepModel.model_fields),
    "only_between": tuple(WindowModel.model_fields),
    "rules": tuple(RuleModel.model_fields),
    "tiers": tuple(TierModel.model_fields),
    "people": tuple(PersonContact.model_fields),
    "contacts": tuple(Contacts.model_fields),
}
_ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "move_psa_ticket": tuple(MovePsaTicketAction.model_fields),
    "set_vendor_priority": tuple(SetVendorPriorityAction.model_fields),
    "set_vendor_field": tuple(SetVendorFieldAction.model_fields),
    "vendor_note": tuple(VendorNoteAction.model_fields),
    "email_vendor": tuple(EmailVendorAction.model_fields),
    "notify": tuple(NotifyAction.model_fields),
    "client_update": tuple(ClientUpdateAction.model_fields),
    "lessons_learned": tuple(LessonsLearnedAction.model_fields),
}


def _known_keys(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The keys allowed where an unknown key was found (for did-you-mean hints)."""
    parent = [p for p in loc[:-1] if isinstance(p, str)]
    if not parent:
        return tuple(RulesFile.model_fields)
    last = parent[-1]
    if last in _ACTION_KEYS:
        return _ACTION_KEYS[last]
    if last in _SECTION_KEYS:
        return _SECTION_KEYS[last]
    if len(parent) >= 2 and parent[-2] == "people":
        return _SECTION_KEYS["people"]
    return ()


def parse_rules_file(
    data: Any, prefix: str = "", aliases: Mapping[str, str] | None = None
) -> tuple[RulesFile | None, list[Problem]]:
    """Validate one file's parsed YAML: the model, or ``None`` and every problem found.

    ``aliases`` maps products' own words for ticket fields to the neutral ones
    (conditions, tiers and moves accept either).
    """
    if data is None:
        return RulesFile(), []
    if not isinstance(data, dict):
        return None, [(f"{prefix}(root)", "the file must hold a mapping", "start with `rules:`")]
    try:
        return RulesFile.model_validate(data, context={"aliases": dict(aliases or {})}), []
    except ValidationError as exc:
        return None, problems_from_validation_error(exc, prefix)
