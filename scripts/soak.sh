#!/usr/bin/env bash
# The failover soak: workers SIGKILLed at random moments and restarted, the export compared
# with an undisturbed run's. Set-up as for the tests; knobs: DISTILL_SOAK_RUNS (3),
# DISTILL_SOAK_KILLS (7 a run), DISTILL_SOAK_WORKERS (2), DISTILL_SOAK_SEED (1),
# DISTILL_SOAK_TALLY (a JSON file for the tally).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/test.sh -m soak -s tests/integration/test_failover_soak.py "$@"
