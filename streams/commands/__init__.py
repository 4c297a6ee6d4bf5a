"""The operator commands behind ``distill``: ingest, follow, export, stats, wait, demo, the
quarantine tail, the manifest, and running the worker (and replay)."""
