"""Benchmark: one scheduler sweep over 100,000 open SLA clocks held as checkpoints.

Builds the clocks in memory (a mix of business calendars in three time zones
with public holidays and a 24x7 calendar, several priorities, histories with
acknowledgments, vendor updates, pauses and some resolutions), then times:

* the sweep: :func:`ticketbridge.sla.clock.sweep_status` for every clock at
  ``now`` -- breached metrics, threshold levels, at-risk flags and the next
  wake-up, from the checkpoint alone (target: <= 1 s CPU in total);
* for comparison, a full :func:`ticketbridge.sla.clock.snapshot` of every clock,
  which also computes elapsed business time from the checkpoint to ``now``.

Run: ``.venv/bin/python bench/bench_sla_sweep.py [--clocks 100000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from ticketbridge.sla.clock import (
    ClockPolicy,
    EventKind,
    Metric,
    SlaEvent,
    SlaState,
    elapsed_at,
    repair,
    snapshot,
    sweep_status,
)
from ticketbridge.sla.models import CalendarConfig, ContractConfig

NOW = datetime(2026, 3, 10, 15, 7, 31, tzinfo=UTC)  # just after the US DST change

CALENDARS = [
    CalendarConfig.model_validate(c).build()
    for c in (
        {
            "name": "us-east",
            "timezone": "America/New_York",
            "hours": {"mon-fri": ["08:00-12:00", "13:00-17:30"]},
            "holidays": {"country": "US", "subdivision": "NY"},
        },
        {
            "name": "de-by",
            "timezone": "Europe/Berlin",
            "hours": {"mon-fri": ["08:00-18:00"]},
            "holidays": {"country": "DE", "subdivision": "BY"},
        },
        {
            "name": "au-nsw",
            "timezone": "Australia/Sydney",
            "hours": {"mon-fri": ["09:00-17:00"], "sat": ["09:00-12:00"]},
            "holidays": {"country": "AU", "subdivision": "NSW"},
        },
        {"name": "24x7", "hours": "24x7"},
    )
]

CONTRACT = ContractConfig.model_validate(
    {
        "name": "bench",
        "vendor": "servicenow",
        "calendar": "any",
        "targets": {
            "1": {
                "acknowledgment": {"duration": "15m", "business": False},
                "update_cadence": {"duration": "1h", "business": False},
                "resolution": {"duration": "4h", "business": False},
            },
            "2": {"acknowledgment": "30m", "update_cadence": "2h", "resolution": "8h"},
            "3": {"acknowledgment": "2h", "update_cadence": "8h", "resolution": "3d"},
            "4": {"acknowledgment": "4h", "update_cadence": "1d", "resolution": "1w"},
        },
        "thresholds": [50, 75, 90, 100],
    }
)


def policies() -> list[ClockPolicy]:
    return [
        ClockPolicy.from_contract(CONTRACT, priority, calendar)
        for calendar in CALENDARS
        for priority in ("1", "2", "3", "4")
    ]


def history(rng: random.Random) -> list[SlaEvent]:
    """A plausible vendor ticket history ending before NOW."""
    opened = NOW - timedelta(minutes=rng.randint(1, 14 * 24 * 60), seconds=rng.randint(0, 59))
    events = [SlaEvent(opened, EventKind.OPENED, 0)]
    t, seq = opened, 0
    for i in range(rng.choice((0, 1, 2, 3, 4, 6))):
        # A first response within minutes to hours, then updates hours to days apart.
        gap = rng.randint(2, 240) if i == 0 else rng.randint(30, 36 * 60)
        t += timedelta(minutes=gap)
        if t >= NOW:
            break
        seq += 1
        kind = rng.choice(("vendor_public_update", "vendor_public_update", "ball", "acknowledged"))
        value = rng.choice(("msp", "client", "vendor")) if kind == "ball" else None
        events.append(SlaEvent(t, EventKind(kind), seq, value))
    if rng.random() < 0.1 and t < NOW - timedelta(minutes=1):
        events.append(SlaEvent(t + timedelta(minutes=1), EventKind.RESOLVED, seq + 1))
    return events


def build(count: int, seed: int) -> list[tuple[ClockPolicy, SlaState]]:
    rng = random.Random(seed)
    pols = policies()
    clocks = []
    for _ in range(count):
        policy = rng.choice(pols)
        clocks.append((policy, repair(history(rng), policy, NOW).state))
    return clocks


def peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t = time.process_time()
    clocks = build(args.clocks, args.seed)
    build_cpu = time.process_time() - t
    print(f"built {len(clocks):,} checkpoints in {build_cpu:.2f} s CPU")

    t = time.process_time()
    breached: Counter[Metric] = Counter()
    at_risk = wake_due = 0
    for _, state in clocks:
        status = sweep_status(state, NOW)
        for metric in status.breached:
            breached[metric] += 1
        if status.at_risk:
            at_risk += 1
        if status.next_wakeup is not None and status.next_wakeup <= NOW + timedelta(minutes=1):
            wake_due += 1
    sweep_cpu = time.process_time() - t

    t = time.process_time()
    elapsed_total = timedelta(0)
    for policy, state in clocks:
        elapsed_total += elapsed_at(state, policy, NOW)[2]
    elapsed_cpu = time.process_time() - t

    t = time.process_time()
    snapshot_total = timedelta(0)
    for policy, state in clocks:
        snapshot_total += snapshot(state, policy, NOW).resolution.elapsed
    snapshot_cpu = time.process_time() - t
    assert snapshot_total == elapsed_total

    print(f"sweep (sweep_status): {sweep_cpu:.3f} s CPU for {len(clocks):,} clocks")
    print(f"  breached: { {m.value: n for m, n in breached.items()} }")
    print(f"  at risk: {at_risk:,}   waking within a minute: {wake_due:,}")
    print(f"elapsed business time from checkpoint (elapsed_at): {elapsed_cpu:.3f} s CPU")
    print(f"  mean resolution elapsed: {elapsed_total / max(len(clocks), 1)}")
    print(f"full snapshot of every clock (snapshot): {snapshot_cpu:.3f} s CPU")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    verdict = "OK" if sweep_cpu <= 1.0 else "OVER BUDGET"
    print(f"target <= 1.0 s CPU for the sweep: {verdict}")


if __name__ == "__main__":
    main()
