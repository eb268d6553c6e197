"""``python -m bench``: the load benchmark (see bench/load.py), one table per store."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench._harness import postgres_answers
from bench.load import Options, counts_consistent, markdown, run_all, to_json

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgresql", "both", "none"],
        default=None,
        help="none: the relay row only",
    )
    parser.add_argument("--quick", action="store_true", help="short run: a smoke test")
    parser.add_argument("--duration", type=float, default=None, help="seconds per rate (20)")
    parser.add_argument("--rates", type=_ints, default=None, help="notes/s (50,200,500,1000)")
    parser.add_argument("--max-notes", type=int, default=None, help="max run's notes (10000)")
    parser.add_argument("--senders", type=int, default=50, help="max run's senders")
    parser.add_argument("--tickets", type=int, default=50, help="linked tickets")
    parser.add_argument("--polling", type=_ints, default=[1, 5, 20], help="notes per ticket")
    parser.add_argument("--poll-cycles", type=int, default=None, help="polling cycles (3)")
    parser.add_argument("--no-relay", action="store_true", help="skip the relay row")
    parser.add_argument(
        "--paths", action="store_true", help="note each row's most frequent requests"
    )
    parser.add_argument(
        "--no-scale", action="store_true", help="skip bench/scale.py (python -m bench.scale)"
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--markdown", type=Path, help="append the tables to this file")
    parser.add_argument("--record", action="store_true", help="same as --markdown bench/RESULTS.md")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> tuple[Options, str | None]:
    why = None
    if args.store in (None, "both"):
        if postgres_answers():
            stores = ["sqlite", "postgresql"]
        else:
            stores = ["sqlite"]
            why = "PostgreSQL does not answer on 127.0.0.1:5432: SQLite only"
    elif args.store == "none":
        stores = []
    else:
        stores = [args.store]
    quick = args.quick
    opts = Options(
        stores=stores,
        rates=args.rates or [50, 200, 500, 1000],
        duration=args.duration or (5.0 if quick else 20.0),
        max_notes=args.max_notes or (2000 if quick else 10_000),
        senders=args.senders,
        tickets=args.tickets,
        polling=args.polling,
        poll_cycles=args.poll_cycles or (1 if quick else 3),
        drain_cap=120.0 if quick else 300.0,
        relay=not args.no_relay,
        paths=args.paths,
    )
    return opts, why


def scale_section(quick: bool) -> str | None:
    """The markdown of ``bench/scale.py``'s sections, when that file is there."""
    if importlib.util.find_spec("bench.scale") is None:
        return None
    from bench import scale  # type: ignore[attr-defined,unused-ignore]

    run = getattr(scale, "run", None)
    return str(run(quick)) if callable(run) else None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    opts, why = options(args)
    if why:
        print(why, flush=True)

    def say(line: str) -> None:
        print(f"… {line}", file=sys.stderr, flush=True)

    result = asyncio.run(run_all(opts, say))
    text = markdown(result, opts)
    extra = None if args.no_scale else scale_section(args.quick)
    if extra:
        text += "\n" + extra.rstrip() + "\n"
    print(text)
    if args.json:
        args.json.write_text(json.dumps(to_json(result), indent=2) + "\n")
    target = RESULTS if args.record else args.markdown
    if target is not None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        kind = "quick run" if args.quick else "run"
        heading = f"\n## {stamp} ({kind}: `python -m bench {' '.join(argv or sys.argv[1:])}`)\n\n"
        if not target.exists():
            target.write_text("# Load benchmark results\n")
        with target.open("a") as out:
            out.write(heading + text)
    problems = [p for rows in result["stores"].values() for p in counts_consistent(rows)]
    for problem in problems:
        print(f"inconsistent: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
