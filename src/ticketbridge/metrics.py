"""Prometheus metrics, on a registry per daemon (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "ticketbridge_polls", "Polls of a system, by outcome", ["system", "outcome"], registry=r
        )
        self.poll_page_limits = Counter(
            "ticketbridge_poll_page_limit",
            "Polls that stopped at their page limit (the next poll continues where it stopped)",
            ["system"],
            registry=r,
        )
        self.changes = Counter(
            "ticketbridge_changes_seen",
            "Changed tickets seen, by system and trigger",
            ["system", "trigger"],
            registry=r,
        )
        self.webhooks = Counter(
            "ticketbridge_webhooks",
            "Webhook requests, by outcome",
            ["system", "outcome"],
            registry=r,
        )
        self.writes = Counter(
            "ticketbridge_writes",
            "Writes to systems, by outcome",
            ["system", "operation", "outcome"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "ticketbridge_outbox_depth", "Outbox rows, by state", ["state"], registry=r
        )
        self.dead_letters = Gauge(
            "ticketbridge_outbox_dead_letters",
            "Writes dead-lettered and not yet retried or cancelled (ticketbridge outbox list)",
            registry=r,
        )
        self.claims_lost = Counter(
            "ticketbridge_outbox_claims_lost",
            "Writes whose lease ran out and another claim took over before this process "
            "recorded them; nothing of this process's attempt was recorded",
            ["system", "operation"],
            registry=r,
        )
        self.inbox_depth = Gauge(
            "ticketbridge_inbox_pending", "Webhook hints not yet processed", registry=r
        )
        self.mirror_latency = Histogram(
            "ticketbridge_mirror_latency_seconds",
            "From a note's creation at its source to its copy written at the target",
            ["direction"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.notes = Counter(
            "ticketbridge_notes",
            "Notes seen on linked tickets, by decision",
            ["direction", "decision"],
            registry=r,
        )
        self.links = Counter(
            "ticketbridge_links_created",
            "Links created, by origin",
            ["connection", "origin"],
            registry=r,
        )
        self.last_poll_ok = Gauge(
            "ticketbridge_last_poll_success",
            "1 when the system's last poll succeeded",
            ["system"],
            registry=r,
        )
        self.sla_flags = Counter(
            "ticketbridge_sla_flags",
            "Supplier SLA thresholds and breaches flagged, by kind and metric",
            ["kind", "metric"],
            registry=r,
        )
        self.rule_runs = Counter(
            "ticketbridge_rule_runs", "Escalation rule steps run, by rule", ["rule"], registry=r
        )
        self.rules_evaluated = Counter(
            "ticketbridge_rules_evaluated", "Links whose rules a rules pass evaluated", registry=r
        )
        self.notifications = Counter(
            "ticketbridge_notifications", "Notifications sent", ["channel", "outcome"], registry=r
        )
        self.sla_sweeps = Counter("ticketbridge_sla_sweeps", "SLA sweep ticks", registry=r)
        self.reconcile_runs = Counter(
            "ticketbridge_reconcile_runs", "Reconcile runs, by outcome", ["outcome"], registry=r
        )
        self.reconcile_links = Counter(
            "ticketbridge_reconcile_links",
            "Open links a reconcile compared with both systems",
            registry=r,
        )
        self.reconcile_recovered = Counter(
            "ticketbridge_reconcile_recovered",
            "Drift a reconcile found and repaired (changes no webhook or poll had brought): "
            "notes, statuses and priorities, by system",
            ["system", "kind"],
            registry=r,
        )
        for state in ("pending", "sending", "done", "dead", "cancelled"):
            self.outbox_depth.labels(state).set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
