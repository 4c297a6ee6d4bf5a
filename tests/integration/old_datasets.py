"""A venv of its own with the oldest ``datasets`` the README claims, made once and kept.

It lives under ``.local/venvs/`` (not committed), is made on first use (about a minute:
pip fetches the wheels) and reused after; a lock lets two test runs share it.
"""

import fcntl
import subprocess
import sys
from pathlib import Path

OLD_DATASETS = "3.0.0"
# Its contemporaries: datasets 3.0 came out with pyarrow 17, before numpy 2.1 and pandas 2.3.
REQUIREMENTS = [f"datasets=={OLD_DATASETS}", "pyarrow==17.0.0", "numpy<2.1", "pandas<2.3", "huggingface-hub<0.26"]
VENV = Path(__file__).resolve().parents[2] / ".local" / "venvs" / f"datasets-{OLD_DATASETS}"


def old_datasets_python() -> Path:
    python = VENV / "bin" / "python"
    marker = VENV / "requirements.txt"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f"{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (python.exists() and marker.exists() and marker.read_text() == wanted):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
                           check=True, timeout=900)
            marker.write_text(wanted)
    return python
