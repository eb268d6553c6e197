"""Benchmark: one evaluation pass of 50 escalation rules over 100,000 links.

Builds 50 rules in memory (priority, queue, status and company conditions,
SLA thresholds, vendor silence, ticket age, ``any``/``not`` combinators;
half one-off actions, half chains with waits, repeats, hours windows and a
client-update cadence) and 100,000 links' Facts (four PSA priorities, two
boards, SLA clocks at various stages, some vendor notes), then times:

* pass 1 -- every link evaluated at ``now`` with no stored state (rules match,
  chains start, immediate runs render their templates);
* pass 2 -- every link evaluated two hours later with the states of pass 1
  read back from JSON, as after a restart: overdue runs are planned and
  rendered, cadences coalesce;
* pass 3 -- one minute after pass 2: the steady-state sweep, where almost
  nothing is due and running chains are only checked.

Prints CPU seconds (``time.process_time``) per pass and the peak RSS.  The
peak RSS is mostly the benchmark's own inputs: 100,000 links' facts and their
JSON states (each running chain stores its snapshot), held all at once.

Run: ``.venv/bin/python bench/bench_rules.py [--links 100000] [--seed 7] [--freeze]``
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketbridge.rules import (
    Facts,
    LinkFacts,
    MetricFacts,
    PsaFacts,
    RuleSet,
    SlaFacts,
    VendorNote,
    evaluate,
    rules_from_data,
)
from ticketbridge.sla.models import Ball

NOW = datetime(2026, 3, 10, 15, 7, 31, tzinfo=UTC)  # a Tuesday, just after the US DST change
M = timedelta(minutes=1)
PRIORITIES = [
    "Priority 1 - Emergency Response",
    "Priority 2 - Quick Response",
    "Priority 3 - Normal Response",
    "Priority 4 - Low",
]
BOARDS = ["Service Desk", "Vendor Escalations"]
STATUSES = {
    "Service Desk": ["New", "In Progress", "Waiting on Client"],
    "Vendor Escalations": ["New", "In Progress", "Waiting on Vendor"],
}
COMPANIES = [f"C{i:03d}" for i in range(200)]

DIRECTORY: dict[str, Any] = {
    "tiers": [
        {"name": "Tier 1", "queue": "Service Desk"},
        {"name": "Tier 2", "queue": "Service Desk", "group": "Tier 2"},
        {"name": "Tier 3", "queue": "Service Desk", "group": "Tier 3"},
        {"name": "Vendor", "queue": "Vendor Escalations"},
    ],
    "contacts": {
        "vendors": {"snow": {"escalation": ["esc@vendor.example"]}},
        "people": {
            "desk": {"email": "desk@msp.example", "teams": {"env": "TEAMS"}},
            "boss": {"email": "boss@msp.example", "slack": {"env": "SLACK"}},
        },
    },
}


def make_rules(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` varied rules, each scoped to one priority and queue as real rule sets are."""
    note = "{{ vendor.system }} {{ vendor.number }}: {{ ticket.summary }} ({{ ticket.age | duration }})"
    rules: list[dict[str, Any]] = []
    for i in range(count):
        when: dict[str, Any] = {"priority": rng.choice(PRIORITIES), "queue": rng.choice(BOARDS)}
        kind = i % 5
        if kind == 0:
            when["sla"] = {
                "metric": "acknowledgment",
                "elapsed_over": f"{rng.choice([50, 75, 90])}%",
            }
            when["acknowledged"] = False
        elif kind == 1:
            when["vendor_silent_for"] = f"{rng.choice([60, 120, 240])}m"
            when["resolved"] = False
        elif kind == 2:
            when["age_over"] = f"{rng.choice([2, 4, 8])}h"
        elif kind == 3:
            when["any"] = [
                {"sla": {"metric": "resolution", "breached": True}},
                {"escalation_level_at_least": 2},
            ]
        else:
            when["company"] = rng.sample(COMPANIES, 10)
            when["not"] = {"psa_status": "Waiting on Client"}
        rule: dict[str, Any] = {"name": f"rule-{i:02d}", "when": when}
        if i % 2 == 0:
            rule["actions"] = [
                {"type": "notify", "channel": "teams", "to": "desk", "template": note},
                {"type": "vendor_note", "template": note},
            ]
        else:
            rule["stop_when"] = ["resolved", "conditions_false"]
            rule["chain"] = [
                {
                    "actions": [
                        {"type": "notify", "channel": "email", "to": "boss", "template": note},
                        {"type": "client_update", "every": "30m"},
                    ]
                },
                {
                    "after": "20m",
                    "only_between": {"hours": "08:00-18:00", "days": "mon-fri"},
                    "actions": [{"type": "set_vendor_priority", "priority": "1"}],
                },
                {
                    "after": "30m",
                    "repeat": 2,
                    "every": "15m",
                    "actions": [{"type": "move_psa_ticket", "to_tier": "next"}],
                },
            ]
        rules.append(rule)
    return rules


def metric(name: str, fraction: float, target: timedelta, status: str) -> MetricFacts:
    elapsed = target * fraction
    return MetricFacts(
        metric=name,
        status=status,
        elapsed=elapsed,
        target=target,
        remaining=max(target - elapsed, timedelta(0)),
        elapsed_fraction=fraction,
        breached=fraction > 1,
        due_at=NOW + (target - elapsed) if status == "running" else None,
        business=False,
    )


def make_facts(count: int, rng: random.Random) -> list[Facts]:
    out: list[Facts] = []
    for n in range(count):
        board = rng.choice(BOARDS)
        created = NOW - rng.randint(1, 600) * M
        linked = board == "Vendor Escalations" or rng.random() < 0.2
        ack = rng.random() * 1.5
        sla = None
        if linked:
            sla = SlaFacts(
                acknowledgment=metric(
                    "acknowledgment", ack, 30 * M, "running" if ack < 1.2 else "stopped"
                ),
                update_cadence=metric("update_cadence", rng.random(), 60 * M, "running"),
                resolution=metric("resolution", rng.random() * 1.2, 480 * M, "running"),
            )
        last_update = created + rng.randint(0, 300) * M if rng.random() < 0.6 else None
        note = (
            VendorNote("Investigating; next update within the hour.", last_update, "vendor")
            if last_update is not None and last_update < NOW
            else None
        )
        out.append(
            Facts(
                now=NOW,
                psa=PsaFacts(
                    id=str(100000 + n),
                    number=str(100000 + n),
                    summary=f"Incident {n}",
                    priority=rng.choice(PRIORITIES),
                    queue=board,
                    type="Incident",
                    company=rng.choice(COMPANIES),
                    status=rng.choice(STATUSES[board]),
                    group=rng.choice([None, None, "Tier 2", "Tier 3"]),
                    created_at=created,
                ),
                link=LinkFacts(
                    link_id=f"L{n}",
                    connection="cw-snow",
                    vendor_system="snow",
                    vendor_ticket_id=f"sys{n}" if linked else None,
                    vendor_ticket_number=f"INC{n:07d}" if linked else None,
                    vendor_status="In Progress" if linked else None,
                    ball=Ball.VENDOR,
                    linked_at=created + M if linked else None,
                    vendor_last_public_update_at=note.at if note else None,
                    latest_public_note=note,
                    acknowledged_at=created + 20 * M if ack >= 1.2 else None,
                ),
                sla=sla,
                business_hours=True,
            )
        )
    return out


def timed_pass(
    ruleset: RuleSet, facts: list[Facts], states: list[Any], now: datetime
) -> tuple[float, list[Any], Counter[str]]:
    stats: Counter[str] = Counter()
    new_states: list[Any] = []
    start = time.process_time()
    for f, state in zip(facts, states, strict=True):
        ev = evaluate(ruleset, f, state, now)
        new_states.append(ev.state)
        stats["intents"] += len(ev.intents)
        stats["runs"] += len(ev.runs)
        stats["started"] += len(ev.started)
        stats["failed"] += len(ev.failed)
        stats["coalesced"] += len(ev.coalesced)
        stats["links with state"] += bool(ev.state)
        stats["matches"] += len(ev.matched)
    return time.process_time() - start, new_states, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="gc.freeze() the inputs once built, so the cyclic collector does not rescan "
        "100,000 links' facts and states on every pass (a daemon streams them from its store)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    t = time.process_time()
    ruleset, problems = rules_from_data(
        {"dir.yaml": DIRECTORY, "bench.yaml": {"rules": make_rules(args.rules, rng)}}
    )
    if problems:
        print(problems, file=sys.stderr)
        return 1
    load_cpu = time.process_time() - t
    t = time.process_time()
    facts = make_facts(args.links, rng)
    build_cpu = time.process_time() - t
    print(f"{len(ruleset.rules)} rules loaded and compiled in {load_cpu:.3f} s CPU")
    print(f"{len(facts)} links' facts built in {build_cpu:.2f} s CPU")

    if args.freeze:
        gc.collect()
        gc.freeze()
    cpu1, states, stats1 = timed_pass(ruleset, facts, [None] * len(facts), NOW)
    print(
        f"pass 1 (no state):   {cpu1:.2f} s CPU, {cpu1 / len(facts) * 1e6:.1f} us/link; "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats1.items()))
    )

    stored = [json.loads(json.dumps(s)) if s else None for s in states]
    del states
    if args.freeze:
        gc.collect()
        gc.freeze()
    later = NOW + timedelta(hours=2)
    relinked = [f.at(later) for f in facts]
    cpu2, states2, stats2 = timed_pass(ruleset, relinked, stored, later)
    print(
        f"pass 2 (+2h, states from JSON): {cpu2:.2f} s CPU, {cpu2 / len(facts) * 1e6:.1f} us/link; "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats2.items()))
    )

    stored = [json.loads(json.dumps(s)) if s else None for s in states2]
    del states2, relinked
    if args.freeze:
        gc.collect()
        gc.freeze()
    sweep = later + timedelta(minutes=1)
    cpu3, _, stats3 = timed_pass(ruleset, [f.at(sweep) for f in facts], stored, sweep)
    print(
        f"pass 3 (+1 min, steady sweep): {cpu3:.2f} s CPU, {cpu3 / len(facts) * 1e6:.1f} us/link; "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats3.items()))
    )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {peak_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
