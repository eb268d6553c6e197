"""Models for tests of the configuration reference (walk_settings reads their source)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ticketbridge.config import EngineConfig, TicketBridgeConfig
from ticketbridge.duration import Seconds


class Inner(BaseModel):
    """A nested section."""

    #: How many times, at most.
    retries: int = 3
    #: How long to wait between them.
    wait: Seconds = 90.0


class Item(BaseModel):
    #: The item's name.
    name: str


class Outer(BaseModel):
    inner: Inner = Field(default_factory=Inner)
    items: list[Item] = Field(default_factory=list)


class ExtendedEngine(EngineConfig):
    #: A knob added to the engine's settings, to prove the reference follows the models.
    extra_knob: int = 7


class ExtendedRoot(TicketBridgeConfig):
    engine: ExtendedEngine = Field(default_factory=ExtendedEngine)
