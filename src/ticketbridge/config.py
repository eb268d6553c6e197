"""Configuration: YAML files under ``config/``, overridden by ``TICKETBRIDGE_...`` variables.

Secrets are never written in the YAML itself: a value may be given as
``{env: NAME}`` (read from the environment) or ``{file: /run/secrets/name}``
(read from a mounted file).  Every problem is reported with its YAML path and
a hint, all at once, by :func:`load_config` raising :class:`ConfigError`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ticketbridge.adapters import adapter_class, adapter_kinds, field_aliases
from ticketbridge.adapters.base import AdapterSettings, Capability, TicketAdapter
from ticketbridge.domain import Side, StatusClass, with_aliases
from ticketbridge.duration import Seconds
from ticketbridge.duration import parse_duration as _parse_duration
from ticketbridge.errors import ConfigError
from ticketbridge.sla.models import SlaConfig, validate_sla_config
from ticketbridge.wording import plain_message

__all__ = [
    "AdminConfig",
    "ConnectionConfig",
    "EngineConfig",
    "NotePolicy",
    "Problem",
    "ReconcileConfig",
    "RequestBudgetConfig",
    "RoutingConfig",
    "ServerConfig",
    "StoreConfig",
    "SystemConfig",
    "TicketBridgeConfig",
    "load_config",
    "parse_duration",
]

Problem = tuple[str, str, str]
_M = TypeVar("_M", bound=BaseModel)


def parse_duration(value: Any) -> float:
    """Seconds from any form :mod:`ticketbridge.duration` accepts (``30``, ``"250ms"``,
    ``"1h30m"``, ``"PT1H30M"``, ...); ``ValueError`` naming those forms otherwise."""
    return _parse_duration(value).total_seconds()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Strict):
    #: SQLAlchemy URL: ``sqlite:///path/ticketbridge.db`` (default) or
    #: ``postgresql+psycopg://user@host:5432/db``.
    url: str = "sqlite:///var/lib/ticketbridge/ticketbridge.db"
    #: Optional password merged into a PostgreSQL URL (use ``{env: ...}`` or ``{file: ...}``).
    password: str | None = None

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if not scheme.startswith(("sqlite", "postgresql")):
            raise ValueError("store.url must start with sqlite:/// or postgresql+psycopg://")
        return value


class ServerConfig(_Strict):
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    port: int = Field(default=8080, ge=0, le=65535)
    #: Largest webhook body accepted, in bytes.
    max_body: int = 1_000_000
    #: Serve ``/metrics`` on this (public, unauthenticated) port too.  The admin listener
    #: serves it behind its sign-in whenever it runs; ``false`` keeps it off the port the
    #: vendors' webhooks reach.
    metrics: bool = True


class AdminConfig(_Strict):
    """``admin:``: the operator's dashboard, on a listener of its own.

    It never runs open: without a ``token`` or a ``username`` and ``password`` the
    listener does not start (a log line says so).  Give the secrets as references
    (``{env: NAME}`` or ``{file: PATH}``) or ``TICKETBRIDGE_ADMIN__TOKEN_FILE``.
    """

    #: ``false``: no admin listener even with credentials.
    enabled: bool = True
    #: Loopback by default: put a reverse proxy with TLS in front to reach it from elsewhere.
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    #: Bearer token (``Authorization: Bearer ...``, or typed into the sign-in page).
    token: str | None = Field(default=None, min_length=16)
    #: Basic auth, as a pair.
    username: str | None = Field(default=None, min_length=1)
    password: str | None = Field(default=None, min_length=8)
    #: How long a sign-in through the page lasts.
    session: Seconds = Field(default=43200.0, gt=0)
    #: Rows per page of every listing.
    page_size: int = Field(default=50, ge=10, le=500)
    #: The period the vendor scorecards cover, ending now.
    scorecard_window: Seconds = Field(default=90 * 86400.0, gt=0)
    #: How long computed scorecards are shown before they are computed again (in the
    #: background: about a second per thousand links in the window).
    scorecard_refresh: Seconds = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _pair(self) -> AdminConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("admin basic auth needs both `username` and `password`")
        return self

    @property
    def has_credentials(self) -> bool:
        return self.token is not None or self.password is not None


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``null``: JSON when stdout is not a terminal.
    json_output: bool | None = Field(default=None, alias="json")


class EngineConfig(_Strict):
    #: How far back each poll re-reads before its cursor (clock skew, same-second updates).
    overlap: Seconds = 120.0
    #: A linked ticket's notes are read from the newest one already handled, less this
    #: (notes saved at the same moment may become visible in another order).
    note_overlap: Seconds = Field(default=5.0, ge=0)
    #: A ticket's notes are read whole again when they were last read whole this long
    #: ago (and at its first read after a start): a backstop for a note that became
    #: visible later than ``note_overlap`` after its creation time.
    note_reread: Seconds = Field(default=900.0, gt=0)
    #: First poll of a system with no cursor yet reads this far back.
    initial_lookback: Seconds = 86400.0
    #: Pages of changed tickets one poll reads at most.  A poll that reaches the limit
    #: logs ``poll_page_limit`` and counts ``ticketbridge_poll_page_limit``; the next poll
    #: continues right after the last ticket processed.
    poll_max_pages: int = Field(default=50, ge=1)
    #: Attempts per outbox write before it goes to the dead-letter state.
    max_attempts: int = Field(default=8, ge=1)
    #: Backoff between attempts: ``backoff_min * 2**n`` capped at ``backoff_max`` (seconds).
    backoff_min: Seconds = 1.0
    backoff_max: Seconds = 300.0
    #: How often the dispatcher looks for due writes when nothing wakes it (seconds).
    dispatch_interval: Seconds = 1.0
    #: HTTP attempts inside one call (tenacity) before the outbox takes over.
    http_attempts: int = Field(default=3, ge=1)
    #: How often supplier SLA clocks are checked for thresholds and breaches (seconds);
    #: a breach is flagged within one tick of the moment it happens.
    sla_tick: Seconds = 15.0
    #: How long a claimed write is owned before another process may take it over.  The
    #: owner stops retrying inside a call before its lease runs out (less a safety margin).
    write_lease: Seconds = Field(default=120.0, gt=0)
    #: Writes sent at the same time at most (each of another ticket, or a notification);
    #: a finished one is replaced at once.
    dispatch_concurrency: int = Field(default=16, ge=1, le=256)
    #: The longest a system's ``Retry-After`` may park a write; longer (or nonsense like
    #: ``inf``) is cut to this.
    retry_after_max: Seconds = Field(default=900.0, gt=0)
    #: How long after it was queued (or put back by ``outbox retry``) a write may still be
    #: retried; a write that fails past it is dead-lettered with the reason.
    write_deadline: Seconds = Field(default=86400.0, gt=0)
    #: At start the daemon checks online that every queue, status, priority, group,
    #: assignee, field and account named in configuration and rules exists (as
    #: ``check-config --online`` does).  ``false``: what is missing is logged as warnings;
    #: ``true``: the daemon refuses to start.
    strict_names: bool = False
    #: The installation's secret for the markers only ticketbridge can write (HMAC), given
    #: as a secret reference (``{env: NAME}`` or ``{file: PATH}``) so that it survives a
    #: lost store.  Unset: generated once and kept in the store (a restored or fresh store
    #: then recognises earlier writes by author and body hash only; a warning says so).
    marker_secret: str | None = Field(default=None, min_length=16)


class RequestBudgetConfig(_Strict):
    """``systems.<name>.request_budget``: at most ``requests`` API requests per ``per``."""

    requests: int = Field(ge=1)
    #: The period, as a duration (``5m``, ``1h``); ``per_seconds`` is accepted too.
    per: Seconds = Field(gt=0, validation_alias=AliasChoices("per", "per_seconds"))


class ClosingConfig(_Strict):
    """Overrides of a product's closing terms (``ClosingTerms`` in its ``defaults.py``): the
    status that completes or cancels a ticket when its client leaves, and the closing notes
    (Jinja2 templates given ``client``, ``client_name``, ``psa_ticket``, ``vendor_ticket``,
    ``summary``, ``msp``).  Unset entries keep the product's."""

    complete_status: str | None = Field(default=None, min_length=1)
    cancel_status: str | None = Field(default=None, min_length=1)
    complete_note: str | None = Field(default=None, min_length=1)
    cancel_note: str | None = Field(default=None, min_length=1)


class SystemConfig(_Strict):
    kind: str
    base_url: str
    #: The name clients and vendors read in notes, updates and notifications (e.g.
    #: "Acme's service desk"); ``null``: the product's name from its adapter.
    display_name: str | None = Field(default=None, min_length=1, max_length=80)
    poll_interval: Seconds = 60.0
    timeout: Seconds = 20.0
    #: Requests this system may take from ticketbridge per period; ``null``: the
    #: product's documented quota (its adapter's ``request_budget``), if it has one.
    request_budget: RequestBudgetConfig | None = None
    #: The adapter's own settings (credentials, options); validated per adapter kind.
    settings: dict[str, Any] = Field(default_factory=dict)
    #: Status -> class, on top of the adapter's defaults (e.g.
    #: ``{"Waiting Vendor": waiting_on_third_party}``); see ``StatusClass``.
    status_classes: dict[str, StatusClass] = Field(default_factory=dict)
    #: Priority -> rank (1 the most urgent), on top of the adapter's defaults.
    priority_ranks: dict[str, PositiveInt] = Field(default_factory=dict)
    #: End every note ticketbridge writes here with a visible ``[tb:…]`` marker (signed with
    #: ``engine.marker_secret``): a fallback for a system whose notes do not say who wrote
    #: them.  By default notes carry no marker; our writes are found by author and body.
    visible_marker: bool = False
    #: How a client's tickets here are completed or cancelled at its closeout (on top of
    #: the product's terms).
    closing: ClosingConfig | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("credentials do not belong in base_url; put them under settings")
        return value.rstrip("/")


class RoutingConfig(_Strict):
    """Which PSA tickets this connection sends to its vendor.

    A product's own words for the fields are accepted too, as its adapter
    declares them (``field_aliases``): where a PSA has its own word for a queue,
    the administrator may write that word.
    """

    #: PSA queues whose tickets are routed; empty means none by queue.
    queues: list[str] = Field(default_factory=list)
    #: Only tickets in one of these PSA statuses (empty: any).
    statuses: list[str] = Field(default_factory=list)
    #: Only tickets of one of these PSA types (empty: any).
    types: list[str] = Field(default_factory=list)
    #: Only tickets of one of these PSA priorities (empty: any).
    priorities: list[str] = Field(default_factory=list)
    #: Link a PSA ticket whose link field holds a vendor ticket number to that
    #: vendor ticket (links made by hand in the vendor's portal).
    link_by_field: bool = True
    #: PSA queues whose tickets are tracked for escalation rules before any vendor is
    #: involved (the tiered procedure: Tier 1 -> Tier 2 -> ... -> vendor).
    watch_queues: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _product_words(cls, data: Any) -> Any:
        return with_aliases(data, field_aliases())


class NotePolicy(_Strict):
    """What crosses, deny by default."""

    #: PSA public (discussion) notes: ``public`` -> vendor customer-visible comment,
    #: ``private`` -> vendor internal note, ``skip``.
    psa_public: Literal["public", "private", "skip"] = "public"
    #: PSA internal notes never leave the PSA unless this says ``private``.
    psa_internal: Literal["skip", "private"] = "skip"
    #: Vendor public comments land in the PSA as ``internal`` (default) or ``public`` notes.
    vendor_public: Literal["internal", "public", "skip"] = "internal"
    #: Vendor private/work notes land as PSA internal notes, or are skipped.
    vendor_private: Literal["internal", "skip"] = "internal"


class DirectionalMap(_Strict):
    #: vendor value -> PSA value (``null``: leave the PSA alone).
    vendor_to_psa: dict[str, str | None] = Field(default_factory=dict)
    #: PSA value -> vendor value (``null``: leave the vendor alone).
    psa_to_vendor: dict[str, str | None] = Field(default_factory=dict)


class SlaActions(_Strict):
    """What the PSA sees when a vendor's SLA clock crosses a threshold or breaches."""

    #: Post an internal PSA note when a metric crosses a threshold below 100 %.
    note_at_risk: bool = True
    #: Post an internal PSA note on a breach (target, elapsed time, vendor's last action).
    note_on_breach: bool = True
    #: Move the PSA ticket to this status on a breach (``null``: leave it).
    breach_psa_status: str | None = None
    #: Set these PSA fields on a breach, e.g. ``{"custom:Vendor SLA": "Breached"}`` (a
    #: PSA custom field by caption) to tag the ticket for reports and views.
    breach_psa_fields: dict[str, str] = Field(default_factory=dict)


class ConnectionConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    psa: str
    vendor: str
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    #: PSA company identifier -> fields of the vendor ticket that place it in the
    #: right vendor account (the vendor adapter's README names them).
    accounts: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: Account fields for companies not listed in ``accounts``; ``null`` means
    #: such companies are not routed to this vendor.
    default_account: dict[str, str] | None = None
    status_map: DirectionalMap = Field(default_factory=DirectionalMap)
    priority_map: DirectionalMap = Field(default_factory=DirectionalMap)
    notes: NotePolicy = Field(default_factory=NotePolicy)
    #: Write the vendor ticket number back into the PSA ticket's link field.
    write_back_number: bool = True
    #: How supplier SLA thresholds and breaches show in the PSA.
    sla: SlaActions = Field(default_factory=SlaActions)


class NotifyConfig(_Strict):
    """How ticketbridge reaches people: the mail relay for e-mail actions."""

    #: SMTP settings (host, port, starttls, ssl, username, password, from_address, timeout);
    #: e-mail actions fail (dead-lettered, alerted) without them.
    smtp: dict[str, Any] | None = None


class RulesConfig(_Strict):
    """Escalation rules: YAML files in a directory."""

    #: The directory of rule files (``*.yaml``), relative to this configuration file;
    #: ``null``: no rules.
    directory: str | None = None
    #: A safety net: how often every open link's rules are re-evaluated.  Chain steps and
    #: conditions that time alone makes true (ticket age, vendor silence) already run on each
    #: link's own timer, and SLA thresholds on the SLA sweep.
    tick: Seconds = 900.0


class ReconcileConfig(_Strict):
    """The scheduled reconcile: each open link compared with both systems, drift repaired
    through the normal engine path (a note or a status change no webhook announced)."""

    #: Run it at all (``ticketbridge reconcile`` runs it by hand either way).
    enabled: bool = True
    #: How often a run starts (the first one this long after the start).
    every: Seconds = Field(default=3600.0, gt=0)
    #: Open links one run compares at most; the next run continues after the last one.
    links_per_run: int = Field(default=500, ge=1)
    #: The share of each system's request budget left to live work: a run waits while
    #: fewer requests than this are free, and ends (the next one continues) if that lasts
    #: past ``every``.
    budget_reserve: float = Field(default=0.5, ge=0, lt=1)
    #: Changes younger than this are left to webhooks and polls (they may be on their
    #: way): a run neither repairs nor counts them.
    grace: Seconds = Field(default=60.0, ge=0)


class TicketBridgeConfig(BaseSettings):
    """The root of ``ticketbridge.yaml``."""

    model_config = SettingsConfigDict(
        env_prefix="TICKETBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    store: StoreConfig = Field(default_factory=StoreConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    #: The operator's dashboard (off unless credentials are configured).
    admin: AdminConfig = Field(default_factory=AdminConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    systems: dict[str, SystemConfig] = Field(default_factory=dict)
    connections: list[ConnectionConfig] = Field(default_factory=list)
    #: Supplier SLA contracts, business calendars and ball-in-court rules.
    sla: SlaConfig = Field(default_factory=SlaConfig)
    #: Escalation rules.
    rules: RulesConfig = Field(default_factory=RulesConfig)
    #: Notification channels.
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    #: The scheduled comparison of open links with both systems.
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables override the YAML file (passed as init values);
        # TICKETBRIDGE_..._FILE variables name files holding the value (container secrets).
        return (_FileAwareEnv(settings_cls, env_settings), init_settings)

    # -- resolved views ---------------------------------------------------------
    def adapter_settings(self, system: str) -> AdapterSettings:
        cfg = self.systems[system]
        model = adapter_class(cfg.kind).settings_model
        return model.model_validate(cfg.settings)

    def request_budget(self, system: str) -> tuple[int, float] | None:
        """``(requests, per_seconds)`` for ``system``: its configured budget, else its
        product's documented quota, else ``None`` (unpaced)."""
        cfg = self.systems[system]
        if cfg.request_budget is not None:
            return (cfg.request_budget.requests, cfg.request_budget.per)
        return adapter_class(cfg.kind).request_budget

    def display_name(self, system: str) -> str:
        """The name of ``system`` as clients and vendors read it: its configured
        ``display_name``, else its product's name (the adapter's), never the config key
        unless the system or its kind is unknown."""
        cfg = self.systems.get(system)
        if cfg is None:
            return system
        if cfg.display_name:
            return cfg.display_name
        try:
            return adapter_class(cfg.kind).display_name
        except (KeyError, TypeError):
            return system

    def poll_intervals(self) -> Mapping[str, float]:
        return {name: s.poll_interval for name, s in self.systems.items()}


# -- secrets ---------------------------------------------------------------------


class _FileAwareEnv(PydanticBaseSettingsSource):
    """The environment source, where ``X_FILE`` variables are read into ``X``."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return _read_file_vars(self._inner(), "")


def _read_file_vars(data: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            out[key] = _read_file_vars(value, where)
        elif key.lower().endswith("_file") and isinstance(value, str):
            base = key[: -len("_file")]
            if base in data:
                problems.append(
                    (
                        where[: -len("_file")],
                        "both the value and its _FILE are set",
                        "set only one of them",
                    )
                )
                continue
            secret = read_secret("file", value, where[: -len("_file")], problems)
            if secret is not None:
                from ticketbridge.log import register_secret

                register_secret(secret)
                out[base] = secret
        else:
            out[key] = value
    if problems:
        collector = _COLLECTED.get()
        if collector is None:
            raise ConfigError(problems)
        collector.extend(problems)
    return out


#: While :func:`load_config` runs: where problems found inside pydantic-settings sources go,
#: so they are reported with every other problem instead of stopping the check.
_COLLECTED: ContextVar[list[Problem] | None] = ContextVar(
    "ticketbridge_config_problems", default=None
)


_SECRET_REF_KEYS = frozenset({"env", "file"})


def _resolve_refs(value: Any, path: str, problems: list[Problem], secrets: list[str]) -> Any:
    """Replace ``{env: NAME}`` / ``{file: PATH}`` by their values, recursively."""
    if isinstance(value, dict):
        if value and set(value) <= _SECRET_REF_KEYS and len(value) == 1:
            ((kind, ref),) = value.items()
            secret = read_secret(kind, str(ref), path, problems)
            if secret is not None:
                secrets.append(secret)
            return secret
        return {
            k: _resolve_refs(v, f"{path}.{k}" if path else str(k), problems, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_refs(v, f"{path}[{i}]", problems, secrets) for i, v in enumerate(value)]
    return value


def read_secret(kind: str, ref: str, path: str, problems: list[Problem]) -> str | None:
    if kind == "env":
        file_var = f"{ref}_FILE"
        if ref in os.environ and file_var in os.environ:
            problems.append((path, f"both {ref} and {file_var} are set", "set only one of them"))
            return None
        if file_var in os.environ:
            return read_secret("file", os.environ[file_var], path, problems)
        if ref not in os.environ:
            problems.append(
                (
                    path,
                    f"environment variable {ref} is not set",
                    f"export {ref}=... or set {file_var} to a secret file",
                )
            )
            return None
        return os.environ[ref]
    file = Path(ref)
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(
            (
                path,
                f"cannot read secret file {ref}: {exc.strerror}",
                "mount the secret file or fix the path",
            )
        )
        return None
    if mode & stat.S_IROTH:
        from ticketbridge.log import get_logger

        get_logger(__name__).warning("secret_file_world_readable", path=ref, yaml_path=path)
    if not text:
        problems.append((path, f"secret file {ref} is empty", "write the secret into the file"))
        return None
    return text


# -- loading -----------------------------------------------------------------------


def _loc_to_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _hint_for(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    if kind == "missing":
        return "add it"
    if kind == "string_pattern_mismatch":
        return "use letters, digits, '.', '_' or '-'"
    return ""


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types behind ``X | None``, ``Annotated[X, ...]`` and unions."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _step_into(annotation: Any, part: int | str) -> Any:
    """The type found one step (a key or a list index) inside a value of ``annotation``."""
    import typing

    for candidate in _unwrap(annotation):
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if not isinstance(part, str):
                continue
            for name, info in candidate.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
        elif origin in (dict, Mapping) and len(args) == 2:
            return args[1]
        elif origin in (list, tuple, set, frozenset) and args and isinstance(part, int):
            return args[0]
    return None


def _known_settings(root: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str]:
    """The setting names a model accepts where the unknown key at ``loc`` was written."""
    annotation: Any = root
    for part in loc[:-1]:
        if annotation is None:
            return []
        annotation = _step_into(annotation, part)
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return [info.alias or name for name, info in candidate.model_fields.items()]
    return []


def _admin_message(
    err: Mapping[str, Any], loc: tuple[int | str, ...], prefix: str, root: type[BaseModel] | None
) -> tuple[str, str]:
    """``(message, hint)`` for one validation error, in the administrator's terms."""
    from difflib import get_close_matches

    kind = str(err.get("type", ""))
    name = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        parent = _loc_to_path(loc[:-1], prefix) if loc[:-1] or prefix else "the top level"
        known = _known_settings(root, loc)
        close = get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            return f"unknown setting `{name}` in {parent} — did you mean `{close[0]}`?", ""
        hint = f"known settings: {', '.join(sorted(known))}" if known else _hint_for(err)
        return f"unknown setting `{name}` in {parent}", hint
    if kind == "missing":
        return f"`{name}` is required" if name else "is required", "add it"
    return plain_message(err), _hint_for(err)


def _validation_problems(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    """Every error of ``exc`` at its YAML path, said in the administrator's terms.

    ``model`` is the model that was validated (for "did you mean" on unknown settings);
    ``None``: the root configuration.
    """
    root = model or TicketBridgeConfig
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-before"))
        message, hint = _admin_message(err, loc, prefix, root)
        problems.append((_loc_to_path(loc, prefix), message, hint))
    return problems


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}", "check the path")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([(str(path), f"not valid YAML{where}", "fix the YAML syntax")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([("(root)", "the file must hold a mapping", "start with `systems:`")])
    return data


def load_config(source: Path | Mapping[str, Any]) -> TicketBridgeConfig:
    """Load, resolve secrets, validate everything; raise ``ConfigError`` listing every problem.

    One pass: problems of the file's shape, of secrets (``{env: ...}``, ``{file: ...}``,
    ``TICKETBRIDGE_..._FILE``), of each system and connection, of the rule files and of
    the notification channels they use are all collected before anything is raised.  A
    problem with a value set by an environment variable names that variable.
    """
    raw = read_yaml(source) if isinstance(source, Path) else dict(source)
    base = source.parent if isinstance(source, Path) else Path.cwd()
    rules_raw = raw.get("rules")
    if isinstance(rules_raw, dict) and isinstance(rules_raw.get("directory"), str):
        raw["rules"] = {**rules_raw, "directory": str((base / rules_raw["directory"]).resolve())}
    problems: list[Problem] = []
    secrets: list[str] = []
    resolved = _resolve_refs(raw, "", problems, secrets)
    env_problems: list[Problem] = []
    token = _COLLECTED.set(env_problems)
    try:
        config = TicketBridgeConfig(**resolved)
    except ValidationError as exc:
        problems.extend(env_problems)
        problems.extend(_validation_problems(exc))
        partial = _partial_config(resolved)
        problems.extend(semantic_problems(partial))
        raise ConfigError(_named_env(_without_echoes(problems))) from None
    finally:
        _COLLECTED.reset(token)
    problems.extend(env_problems)
    problems.extend(semantic_problems(config))
    if problems:
        raise ConfigError(_named_env(_without_echoes(problems)))
    from ticketbridge.log import register_secret

    for secret in secrets:
        register_secret(secret)
    for value in (config.store.password, config.admin.token, config.admin.password):
        if value:
            register_secret(value)
    return config


def env_overrides() -> dict[str, str]:
    """Configuration path -> the ``TICKETBRIDGE_...`` variable that sets it (``_FILE`` ones too).

    Paths are lower-cased, as pydantic-settings reads the variables without regard to case.
    """
    prefix = TicketBridgeConfig.model_config.get("env_prefix", "") or ""
    delimiter = TicketBridgeConfig.model_config.get("env_nested_delimiter", "__") or "__"
    tops = set(TicketBridgeConfig.model_fields)
    found: dict[str, str] = {}
    for var in os.environ:
        if not var.upper().startswith(prefix.upper()):
            continue
        parts = var[len(prefix) :].lower().split(delimiter)
        if not parts or parts[0] not in tops:
            continue
        parts[-1] = parts[-1].removesuffix("_file")
        found[".".join(parts)] = var
    return found


def _named_env(problems: list[Problem]) -> list[Problem]:
    """Each problem whose value an environment variable sets names that variable in its path."""
    overrides = env_overrides()
    if not overrides:
        return problems
    out: list[Problem] = []
    for path, message, hint in problems:
        folded = path.casefold()
        var = next(
            (
                name
                for env_path, name in sorted(overrides.items(), key=lambda kv: -len(kv[0]))
                if folded == env_path or folded.startswith((env_path + ".", env_path + "["))
            ),
            None,
        )
        out.append((f"{path} (from {var})" if var else path, message, hint))
    return out


def _without_echoes(problems: list[Problem]) -> list[Problem]:
    """Each path once, and nothing about a value (or its parent) already reported.

    A secret that cannot be read is reported with its variable or file; the schema's
    own complaint about the same missing value would only repeat it.
    """
    out: list[Problem] = []
    seen: list[str] = []
    for problem in problems:
        path = problem[0]
        if any(path == p or p.startswith(path + ".") for p in seen):
            continue
        seen.append(path)
        out.append(problem)
    return out


def _valid_or_default(model: type[BaseModel], field: str, raw: Mapping[str, Any]) -> Any:
    """``raw[field]`` validated as ``model``'s field, else the field's default."""
    from pydantic import TypeAdapter

    info = model.model_fields[field]
    if field in raw:
        try:
            annotation: Any = info.annotation
            return TypeAdapter(annotation).validate_python(raw[field])
        except (ValidationError, TypeError, ValueError):
            pass
    default = info.get_default(call_default_factory=True)
    return "" if default is PydanticUndefined else default


def _partial_model(model: type[_M], raw: Mapping[str, Any]) -> _M:
    """What validates of one broken section, field by field; defaults for the rest."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        pass
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        data = {name: raw[key]} if key in raw else {}
        values[name] = _valid_or_default(model, name, data)
    return model.model_construct(**values)


def _partial_config(raw: Mapping[str, Any]) -> TicketBridgeConfig:
    """What validates of a broken file, so every other check still reports (one pass)."""
    systems: dict[str, SystemConfig] = {}
    raw_systems = raw.get("systems")
    if isinstance(raw_systems, Mapping):
        for name, value in raw_systems.items():
            if not isinstance(value, Mapping):
                continue
            try:
                systems[str(name)] = SystemConfig.model_validate(value)
            except ValidationError:
                systems[str(name)] = SystemConfig.model_construct(
                    kind=str(value.get("kind", "")),
                    base_url=str(value.get("base_url", "")),
                    poll_interval=_valid_or_default(SystemConfig, "poll_interval", value),
                    status_classes=_valid_or_default(SystemConfig, "status_classes", value),
                    priority_ranks=_valid_or_default(SystemConfig, "priority_ranks", value),
                    settings=dict(value.get("settings") or {}),
                )
    connections: list[ConnectionConfig] = []
    raw_conns = raw.get("connections")
    if isinstance(raw_conns, list):
        for value in raw_conns:
            if isinstance(value, Mapping):
                connections.append(_partial_model(ConnectionConfig, value))
    sections: dict[str, Any] = {}
    for name in ("sla", "rules", "notify", "engine", "store", "server", "log"):
        info = TicketBridgeConfig.model_fields[name]
        model = info.annotation
        value = raw.get(name)
        if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(value, Mapping):
            sections[name] = (
                _partial_model(model, value)
                if name != "sla"
                else _valid_or_default(TicketBridgeConfig, name, raw)
            )
        else:
            sections[name] = info.get_default(call_default_factory=True)
    return TicketBridgeConfig.model_construct(systems=systems, connections=connections, **sections)


def semantic_problems(config: TicketBridgeConfig) -> list[Problem]:
    """Cross-field checks that a schema cannot express."""
    problems: list[Problem] = []
    admin = config.admin
    if admin.enabled and admin.has_credentials and admin.port == config.server.port != 0:
        problems.append(
            (
                "admin.port",
                f"the dashboard needs a port of its own; server.port is {admin.port} too",
                "set admin.port to another port (8081 by default)",
            )
        )
    kinds = adapter_kinds()
    sides: dict[str, frozenset[Side]] = {}
    classes: dict[str, type[TicketAdapter]] = {}
    for name, system in config.systems.items():
        path = f"systems.{name}"
        if system.kind not in kinds:
            problems.append(
                (
                    f"{path}.kind",
                    f"unknown adapter kind {system.kind!r}",
                    f"one of: {', '.join(kinds)}",
                )
            )
            continue
        cls = adapter_class(system.kind)
        classes[name] = cls
        sides[name] = cls.sides
        try:
            cls.settings_model.model_validate(system.settings)
        except ValidationError as exc:
            problems.extend(_validation_problems(exc, f"{path}.settings", cls.settings_model))
        if system.poll_interval < 1:
            problems.append(
                (
                    f"{path}.poll_interval",
                    "poll interval below 1 second",
                    "poll at most once a second; webhooks give faster updates",
                )
            )
    if not config.systems:
        problems.append(
            (
                "systems",
                "no systems configured",
                "add a PSA and a vendor system; see config/ticketbridge.example.yaml",
            )
        )
    seen_names: set[str] = set()
    for i, conn in enumerate(config.connections):
        path = f"connections[{i}]"
        if conn.name in seen_names:
            problems.append(
                (
                    f"{path}.name",
                    f"duplicate connection name {conn.name!r}",
                    "give every connection its own name",
                )
            )
        seen_names.add(conn.name)
        for field, side in (("psa", Side.PSA), ("vendor", Side.VENDOR)):
            ref = getattr(conn, field)
            if ref not in config.systems:
                problems.append(
                    (
                        f"{path}.{field}",
                        f"unknown system {ref!r}",
                        f"one of: {', '.join(sorted(config.systems)) or '(none)'}",
                    )
                )
            elif ref in sides and side not in sides[ref]:
                problems.append(
                    (
                        f"{path}.{field}",
                        f"system {ref!r} ({config.systems[ref].kind}) cannot be a {side}",
                        "swap psa and vendor?",
                    )
                )
        if not conn.routing.queues and not conn.routing.link_by_field:
            problems.append(
                (
                    f"{path}.routing",
                    "routes nothing: no queues and link_by_field off",
                    "list the PSA queues whose tickets go to this vendor",
                )
            )
        vendor_cls = classes.get(conn.vendor)
        if vendor_cls is not None and vendor_cls.known_statuses is not None:
            known = vendor_cls.known_statuses
            v2p = conn.status_map.vendor_to_psa
            for status in known:
                if status not in v2p:
                    problems.append(
                        (
                            f"{path}.status_map.vendor_to_psa",
                            f"vendor status {status!r} has no mapping",
                            f"add `{status}: <PSA status>` (or null to leave the PSA status alone)",
                        )
                    )
            for status in v2p:
                if status not in known:
                    problems.append(
                        (
                            f"{path}.status_map.vendor_to_psa.{status}",
                            f"{conn.vendor} has no status {status!r}",
                            f"one of: {', '.join(known)}",
                        )
                    )
            for psa_status, vendor_status in conn.status_map.psa_to_vendor.items():
                if vendor_status is not None and vendor_status not in known:
                    problems.append(
                        (
                            f"{path}.status_map.psa_to_vendor.{psa_status}",
                            f"{conn.vendor} has no status {vendor_status!r}",
                            f"one of: {', '.join(known)}",
                        )
                    )
        if vendor_cls is not None and vendor_cls.known_priorities is not None:
            kp = vendor_cls.known_priorities
            for psa_prio, vendor_prio in conn.priority_map.psa_to_vendor.items():
                if vendor_prio is not None and vendor_prio not in kp:
                    problems.append(
                        (
                            f"{path}.priority_map.psa_to_vendor.{psa_prio}",
                            f"{conn.vendor} has no priority {vendor_prio!r}",
                            f"one of: {', '.join(kp)}",
                        )
                    )
            for vendor_prio in conn.priority_map.vendor_to_psa:
                if vendor_prio not in kp:
                    problems.append(
                        (
                            f"{path}.priority_map.vendor_to_psa.{vendor_prio}",
                            f"{conn.vendor} has no priority {vendor_prio!r}",
                            f"one of: {', '.join(kp)}",
                        )
                    )
    known_priorities: dict[str, Any] = {}
    vendor_systems = {c.vendor for c in config.connections}
    for name in vendor_systems:
        if name in classes:
            known_priorities[name] = classes[name].known_priorities
    for name in config.systems:
        if name in classes and Side.VENDOR in classes[name].sides:
            known_priorities.setdefault(name, classes[name].known_priorities)
    problems.extend(
        validate_sla_config(
            config.sla.calendars, config.sla.contracts, known_priorities, prefix="sla"
        )
    )
    for name in config.sla.ball:
        if name not in config.systems:
            problems.append(
                (
                    f"sla.ball.{name}",
                    f"unknown system {name!r}",
                    f"one of: {', '.join(sorted(config.systems)) or '(none)'}",
                )
            )
    if config.notify.smtp is not None:
        from ticketbridge.notify.email import SmtpSettings

        try:
            SmtpSettings.model_validate(config.notify.smtp)
        except ValidationError as exc:
            problems.extend(_validation_problems(exc, "notify.smtp", SmtpSettings))
    if config.rules.directory is not None:
        from ticketbridge.rules.loader import load_rules

        ruleset, rule_problems = load_rules(
            config.rules.directory,
            calendars=config.sla.build_calendars(),
            aliases=field_aliases(),
        )
        problems.extend(rule_problems)
        problems.extend(_rule_capability_problems(config, classes, ruleset.rules))
        problems.extend(_rule_channel_problems(config, ruleset))
    if config.systems and not config.connections:
        problems.append(
            ("connections", "no connections configured", "pair a PSA system with a vendor system")
        )
    problems.extend(_capability_problems(config, classes))
    return problems


# -- capabilities: what the configuration asks of each product ---------------------------


def _lacks(
    config: TicketBridgeConfig,
    classes: Mapping[str, type[TicketAdapter]],
    system: str,
    path: str,
    capability: Capability,
    hint: str,
) -> list[Problem]:
    """One problem when ``system``'s product does not declare ``capability``."""
    cls = classes.get(system)
    if cls is None or capability in cls.capabilities:
        return []
    kind = config.systems[system].kind
    return [
        (
            path,
            f"system {system!r} is {cls.display_name} (kind {kind}), which lacks {capability.value!r}",
            hint,
        )
    ]


def _capability_problems(
    config: TicketBridgeConfig, classes: Mapping[str, type[TicketAdapter]]
) -> list[Problem]:
    """Connections and systems that need a capability their product lacks."""
    problems: list[Problem] = []
    for name, system in config.systems.items():
        cls = classes.get(name)
        if cls is None:
            continue
        for secret in cls.settings_model.webhook_secret_fields():
            if system.settings.get(secret) is not None:
                problems += _lacks(
                    config,
                    classes,
                    name,
                    f"systems.{name}.settings.{secret}",
                    Capability.WEBHOOKS,
                    "remove the webhook secret; this product is polled",
                )
    for i, conn in enumerate(config.connections):
        problems += _connection_capability_problems(config, classes, f"connections[{i}]", conn)
    return problems


def _connection_capability_problems(
    config: TicketBridgeConfig,
    classes: Mapping[str, type[TicketAdapter]],
    path: str,
    conn: ConnectionConfig,
) -> list[Problem]:
    psa, vendor, notes = conn.psa, conn.vendor, conn.notes
    checks: list[tuple[bool, str, str, Capability, str]] = [
        (
            True,
            vendor,
            f"{path}.vendor",
            Capability.CREATE_TICKET,
            "the vendor side opens tickets; pick a product that can, or swap psa and vendor",
        ),
        (
            notes.psa_public != "skip" or notes.psa_internal != "skip",
            vendor,
            f"{path}.notes",
            Capability.ADD_NOTE,
            "set notes.psa_public and notes.psa_internal to skip",
        ),
        (
            notes.vendor_public != "skip" or notes.vendor_private != "skip",
            psa,
            f"{path}.notes",
            Capability.ADD_NOTE,
            "set notes.vendor_public and notes.vendor_private to skip",
        ),
        (
            conn.sla.note_at_risk or conn.sla.note_on_breach,
            psa,
            f"{path}.sla",
            Capability.ADD_NOTE,
            "set sla.note_at_risk and sla.note_on_breach to false",
        ),
        (
            any(v is not None for v in conn.status_map.psa_to_vendor.values()),
            vendor,
            f"{path}.status_map.psa_to_vendor",
            Capability.SET_STATUS,
            "map every PSA status to null, or remove psa_to_vendor",
        ),
        (
            any(v is not None for v in conn.status_map.vendor_to_psa.values()),
            psa,
            f"{path}.status_map.vendor_to_psa",
            Capability.SET_STATUS,
            "map every vendor status to null, or remove vendor_to_psa",
        ),
        (
            conn.sla.breach_psa_status is not None,
            psa,
            f"{path}.sla.breach_psa_status",
            Capability.SET_STATUS,
            "remove breach_psa_status",
        ),
        (
            any(v is not None for v in conn.priority_map.psa_to_vendor.values()),
            vendor,
            f"{path}.priority_map.psa_to_vendor",
            Capability.SET_PRIORITY,
            "map every PSA priority to null, or remove psa_to_vendor",
        ),
        (
            any(v is not None for v in conn.priority_map.vendor_to_psa.values()),
            psa,
            f"{path}.priority_map.vendor_to_psa",
            Capability.SET_PRIORITY,
            "map every vendor priority to null, or remove vendor_to_psa",
        ),
        (
            bool(conn.sla.breach_psa_fields),
            psa,
            f"{path}.sla.breach_psa_fields",
            Capability.SET_FIELDS,
            "remove breach_psa_fields",
        ),
        (
            conn.routing.link_by_field,
            vendor,
            f"{path}.routing.link_by_field",
            Capability.FIND_BY_NUMBER,
            "set routing.link_by_field to false",
        ),
    ]
    problems: list[Problem] = []
    for needed, system, where, capability, hint in checks:
        if needed:
            problems += _lacks(config, classes, system, where, capability, hint)
    return problems


#: rule action type -> (side it acts on, capability it needs)
_ACTION_NEEDS: Mapping[str, tuple[Side, Capability]] = {
    "set_vendor_priority": (Side.VENDOR, Capability.SET_PRIORITY),
    "set_vendor_field": (Side.VENDOR, Capability.SET_FIELDS),
    "vendor_note": (Side.VENDOR, Capability.ADD_NOTE),
    "client_update": (Side.PSA, Capability.ADD_NOTE),
}


def _action_needs(action: Any) -> list[tuple[Side, Capability]]:
    """What one rule action asks of the PSA or the vendor."""
    if action.type != "move_psa_ticket":
        need = _ACTION_NEEDS.get(action.type)
        return [need] if need is not None else []
    needs: list[tuple[Side, Capability]] = []
    if any(getattr(action, f, None) for f in ("to_tier", "queue", "assignee", "group")):
        needs.append((Side.PSA, Capability.ASSIGN))
    if action.status:
        needs.append((Side.PSA, Capability.SET_STATUS))
    return needs


def _rule_capability_problems(
    config: TicketBridgeConfig, classes: Mapping[str, type[TicketAdapter]], rules: Any
) -> list[Problem]:
    """Rule actions that would act on a product lacking the capability.

    A rule applies to every connection unless its top-level ``when`` names the
    ``connection`` or ``vendor``.
    """
    problems: list[Problem] = []
    for rule in rules:
        model = rule.model
        where = model.when
        connections = [
            c
            for c in config.connections
            if (where.connection is None or c.name in where.connection)
            and (where.vendor is None or c.vendor in where.vendor)
        ]
        for s, step in enumerate(model.steps):
            for a, action in enumerate(step.actions):
                # rule.source is "<file>: rules[<i>]"
                spot = rule.source + (
                    f".actions[{a}]" if model.chain is None else f".chain[{s}].actions[{a}]"
                )
                for side, capability in _action_needs(action):
                    systems = {c.psa if side is Side.PSA else c.vendor for c in connections}
                    for system in sorted(systems):
                        problems += _lacks(
                            config,
                            classes,
                            system,
                            spot,
                            capability,
                            f"limit the rule with when.connection or when.vendor, "
                            f"or drop the {action.type} action",
                        )
    return problems


# -- notification channels: what the rules send through must be configured -------------------


def _step_label(rule: Any, s: int) -> str:
    model = rule.model
    return f"rule {model.name!r}" + ("" if model.chain is None else f" step {s + 1}")


def _rule_channel_problems(config: TicketBridgeConfig, ruleset: Any) -> list[Problem]:
    """Rule actions whose channel or secret is not configured: a missing mail relay, a
    chat URL whose environment variable or secret file is absent, a URL that is not one.

    These are found now rather than when the rule first fires (where the notification
    would only be dead-lettered).
    """
    from ticketbridge.notify.base import settings_model
    from ticketbridge.rules.models import SecretRef

    problems: list[Problem] = []
    people = ruleset.directory.contacts.people
    for rule in ruleset.rules:
        model = rule.model
        for s, step in enumerate(model.steps):
            for a, action in enumerate(step.actions):
                spot = rule.source + (
                    f".actions[{a}]" if model.chain is None else f".chain[{s}].actions[{a}]"
                )
                who = _step_label(rule, s)
                channel = getattr(action, "channel", None) if action.type == "notify" else None
                if action.type == "email_vendor" or channel == "email":
                    if config.notify.smtp is None:
                        problems.append(
                            (
                                spot,
                                (
                                    f"{who} sends e-mail ({action.type}), but no mail relay "
                                    "is configured"
                                ),
                                (
                                    "add notify.smtp (host, port, from_address, ...) to the "
                                    "configuration, or remove the action"
                                ),
                            )
                        )
                    continue
                if channel is None:
                    continue
                for name in action.to:
                    person = people.get(name)
                    if person is None:
                        continue  # an unknown contact is reported by the rules check
                    for target in person.target(channel):
                        where = f"contacts.people.{name}.{channel}"
                        if isinstance(target, SecretRef):
                            found: list[Problem] = []
                            url = read_secret(target.kind, target.name, where, found)
                            if url is None:
                                for _, message, hint in found:
                                    problems.append(
                                        (
                                            spot,
                                            (
                                                f"{who} notifies {name!r} on {channel}, but "
                                                f"the URL in {where} cannot be read: {message}"
                                            ),
                                            hint,
                                        )
                                    )
                                continue
                        else:
                            url = target
                        try:
                            settings_model(channel).model_validate({"url": url})
                        except ValidationError:
                            problems.append(
                                (
                                    spot,
                                    (
                                        f"{who} notifies {name!r} on {channel}, but {where} "
                                        f"is not a usable {channel} URL"
                                    ),
                                    "give the channel's https webhook URL",
                                )
                            )
    return problems
