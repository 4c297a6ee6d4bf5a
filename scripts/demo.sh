#!/usr/bin/env bash
# The demo: set-up (idempotent), then the whole loop on the bundled sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --no-broker
exec .venv/bin/distill demo "$@"
