"""A rules file the scanner cannot use stops ``distill worker`` at start: one message naming the
rule and why, exit 1, before it even connects (nothing is consumed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("rules", "named"), [
    ('[[rules]]\nid = "broken"\nregex = "(unclosed"\n', "rule 'broken'"),
    ('[[rules]]\nid = "typo"\nregex = "x"\nkeyword = ["x"]\n', "keyword"),
    ("not = [toml", "TOML"),
])
def test_a_rule_the_scanner_cannot_use_stops_the_worker_before_it_connects(tmp_path, rules, named):
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    env = {**os.environ, "DISTILL_SECRET_RULES": str(path), "DISTILL_BOOTSTRAP": "127.0.0.1:1",
           "DISTILL_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "streams", "worker"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: secret rules {path}"), result.stderr
    assert named in result.stderr and "Operator action:" in result.stderr
    assert "cannot reach Kafka" not in result.stderr and "Traceback" not in result.stderr
