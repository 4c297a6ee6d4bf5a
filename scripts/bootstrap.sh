#!/usr/bin/env bash
# Idempotent set-up for a fresh clone: a Python 3.11 venv in .venv with the pinned
# packages (constraints.txt), the package itself in editable mode, and the local Kafka
# broker started on 127.0.0.1:9092 (assembled with Maven on first use; --no-broker skips
# starting it, for the demo, which starts and stops the broker itself).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
if [[ -z $python ]]; then
  echo "error: Python 3.11 is needed (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi

stamp=.venv/.installed
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
  touch "$stamp"
fi

if [[ ${1:-} != --no-broker ]]; then
  .venv/bin/distill kafka up
fi
