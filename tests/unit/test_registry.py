"""The product registry: what every registered adapter declares as data."""

from __future__ import annotations

from typing import ClassVar

import pytest

import ticketbridge.adapters as registry
from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.domain import StatusClass


class TestDeclaredData:
    @pytest.mark.parametrize("kind", adapter_kinds())
    def test_every_product_maps_statuses_and_ranks(self, kind):
        """Each adapter declares status classes and priority ranks of 1 or more."""
        cls = adapter_class(kind)
        ranks = set(cls.priority_ranks.values())
        assert (True, True, True) == (
            bool(cls.status_classes),
            all(isinstance(c, StatusClass) for c in cls.status_classes.values()),
            bool(ranks) and min(ranks) >= 1,
        )

    @pytest.mark.parametrize("kind", adapter_kinds())
    def test_aliases_name_neutral_words(self, kind):
        """A product's words only ever stand for the neutral routing and ticket words."""
        neutral = {"queue", "queues", "watch_queues", "group", "assignee", "type", "subtype"}
        assert set(adapter_class(kind).field_aliases.values()) <= neutral


class TestFieldAliases:
    def test_one_word_with_two_meanings_is_refused(self, monkeypatch):
        """Two installed products giving one word different meanings stop the start."""

        class A:
            field_aliases: ClassVar[dict[str, str]] = {"desk": "queue"}

        class B:
            field_aliases: ClassVar[dict[str, str]] = {"desk": "group"}

        monkeypatch.setattr(registry, "adapter_kinds", lambda: ["a", "b"])
        monkeypatch.setattr(registry, "adapter_class", {"a": A, "b": B}.__getitem__)
        with pytest.raises(RuntimeError, match="'desk'"):
            registry.field_aliases.__wrapped__()

    def test_the_same_meaning_twice_is_fine(self, monkeypatch):
        """Two products sharing a word with one meaning merge."""

        class A:
            field_aliases: ClassVar[dict[str, str]] = {"desk": "queue"}

        monkeypatch.setattr(registry, "adapter_kinds", lambda: ["a", "b"])
        monkeypatch.setattr(registry, "adapter_class", {"a": A, "b": A}.__getitem__)
        assert {"desk": "queue"} == registry.field_aliases.__wrapped__()
