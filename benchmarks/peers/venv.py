"""The peer's virtual environment, made once from ``requirements.txt`` and kept.

It lives under ``.local/venvs/quixstreams-<version>/`` (not committed): made on first use
(about a minute: pip fetches the wheels), reused while ``requirements.txt`` is unchanged, made
again when it changes; a lock lets two benchmarks share it. Standard library only.
"""

from __future__ import annotations

import fcntl
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("requirements.txt")


def quix_version() -> str:
    found = re.search(r"^quixstreams==(\S+)$", REQUIREMENTS.read_text(), re.MULTILINE)
    if not found:
        raise RuntimeError(f"{REQUIREMENTS} pins no quixstreams version")
    return found.group(1)


def peer_python() -> Path:
    """The peer environment's interpreter, made or remade first if needed."""
    venv = ROOT / ".local" / "venvs" / f"quixstreams-{quix_version()}"
    python, marker = venv / "bin" / "python", venv / "requirements.txt"
    wanted = REQUIREMENTS.read_text()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (python.exists() and marker.exists() and marker.read_text() == wanted):
            print(f"making the peer's environment in {venv.relative_to(ROOT)} (once)", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "-r", str(REQUIREMENTS)], check=True, timeout=900)
            marker.write_text(wanted)
    return python


if __name__ == "__main__":
    print(peer_python())
