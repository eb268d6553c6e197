"""The dashboard's navigation and its templates.

Every page is one entry of :data:`NAV`; a new page adds its route
to the app and one :class:`NavItem` here, and the menu of every page shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ticketbridge.engine.sla import format_duration

__all__ = ["NAV", "NavItem", "templates"]


@dataclass(frozen=True)
class NavItem:
    path: str
    title: str


#: The menu, in order.
NAV: list[NavItem] = [
    NavItem("/", "Overview"),
    NavItem("/links", "Links"),
    NavItem("/clocks", "SLA clocks"),
    NavItem("/scorecards", "Scorecards"),
    NavItem("/reviews", "Reviews"),
    NavItem("/closeouts", "Closeouts"),
    NavItem("/dead-letters", "Dead letters"),
    NavItem("/health", "Systems"),
]


def _ts(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _dur(value: timedelta | float | None) -> str:
    if value is None:
        return "—"
    if not isinstance(value, timedelta):
        value = timedelta(seconds=value)
    return format_duration(value)


def _until(value: datetime | None, now: datetime) -> str:
    """``in 1h 05m`` or ``overdue 3m``: what the countdown shows before its script runs."""
    if value is None:
        return "—"
    delta = value - now
    if delta >= timedelta(0):
        return f"in {format_duration(delta)}"
    return f"overdue {format_duration(-delta)}"


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    delta = now - value
    if delta < timedelta(0):
        return "just now"
    return f"{format_duration(delta)} ago"


def _build() -> Environment:
    env = Environment(
        loader=PackageLoader("ticketbridge.web.admin", "templates"),
        # every page is HTML: escaped; the style sheet and script included inline are not
        autoescape=select_autoescape(["html"], default_for_string=True, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = _ts
    env.filters["dur"] = _dur
    env.globals["until"] = _until
    env.globals["ago"] = _ago
    return env


templates = _build()


def render(template: str, **context: Any) -> str:
    return templates.get_template(template).render(nav=NAV, **context)
