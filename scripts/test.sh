#!/usr/bin/env bash
# The test command: set-up (idempotent), then every test tier, the real broker included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
