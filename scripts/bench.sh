#!/usr/bin/env bash
# The benchmark: set-up (idempotent, the local broker included), then benchmarks/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >&2  # stdout is the report (--json: JSON alone)
exec .venv/bin/python benchmarks/run.py "$@"
