"""Benchmarks of what the wrapper costs: per-call overhead, progress latency, concurrency, context
and start-up. ``python -m bench`` runs them all and prints a table (see run.py)."""
