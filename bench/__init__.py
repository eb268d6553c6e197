"""Benchmarks: ``python -m bench`` runs the load benchmark; the ``bench_*.py`` scripts are
single-purpose runs (chaos, rules, SLA sweep, webhook acknowledgment)."""
