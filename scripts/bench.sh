#!/usr/bin/env bash
# The benchmark: set-up (idempotent, the local broker included), then benchmarks/run.py
# (or, with --sitting first, benchmarks/sitting.py: builds and configurations side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >&2  # stdout is the report (--json: JSON alone)
if [[ ${1:-} == --sitting ]]; then
  shift
  exec .venv/bin/python benchmarks/sitting.py "$@"
fi
exec .venv/bin/python benchmarks/run.py "$@"
