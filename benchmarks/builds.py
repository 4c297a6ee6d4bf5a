"""Another build of the worker, to measure it in the same sitting as this one (``--build REF``).

A build is the tree of one commit, unpacked with ``git archive`` under ``.local/builds/<commit>/``
(no git worktree: nothing is registered in the repository), and its own virtual environment
under ``.local/venvs/build-<commit>/`` with the packages that commit's ``constraints.txt`` pins
and the build itself installed in editable mode. Both are made on first use (a minute or two)
and reused after; a lock lets two benchmarks share them. Standard library only.

    .venv/bin/python -m benchmarks.builds e7eaa95    # make it now (before a sitting), print its interpreter

The benchmark runs that build's worker (``python -m streams worker`` in the build's folder,
with the build's interpreter) on the corpus this build generates and publishes; only the
worker process differs.
"""

from __future__ import annotations

import fcntl
import io
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILDS = ROOT / ".local" / "builds"
VENVS = ROOT / ".local" / "venvs"


@dataclass(frozen=True)
class Build:
    ref: str  # as given
    commit: str  # the full hash
    root: Path  # the unpacked tree
    python: Path  # its environment's interpreter

    @property
    def short(self) -> str:
        return self.commit[:7]


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, timeout=120).stdout


def resolve(ref: str) -> str:
    return _git("rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()


def build(ref: str) -> Build:
    """The build of ``ref``, unpacked and with its environment, made first if needed."""
    commit = resolve(ref)
    short = commit[:7]
    root, venv = BUILDS / short, VENVS / f"build-{short}"
    python = venv / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    BUILDS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f"build-{short}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tree_marker = root / ".distill-build-commit"
        if not (tree_marker.exists() and tree_marker.read_text() == commit):
            print(f"unpacking {short} into {root.relative_to(ROOT)} (once)", file=sys.stderr, flush=True)
            subprocess.run(["rm", "-rf", str(root)], check=True)
            root.mkdir(parents=True)
            with tarfile.open(fileobj=io.BytesIO(_git("archive", "--format=tar", commit))) as tar:
                tar.extractall(root, filter="data")
            tree_marker.write_text(commit)
        wanted = (root / "constraints.txt").read_text() + (root / "pyproject.toml").read_text()
        env_marker = venv / "distill-build.txt"
        if not (python.exists() and env_marker.exists() and env_marker.read_text() == wanted):
            print(f"making the environment of {short} in {venv.relative_to(ROOT)} (once)", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "-c", str(root / "constraints.txt"), "-e", str(root)], check=True, timeout=1800)
            env_marker.write_text(wanted)
    return Build(ref, commit, root, python)


if __name__ == "__main__":
    made = build(sys.argv[1] if len(sys.argv) > 1 else "e7eaa95")
    print(made.python)


def profiling_module(made: Build) -> str:
    """For ``--profile --build``: pyinstrument in the build's environment (installed once) and this
    build's ``benchmarks/profiling.py`` copied beside the build's folder under a name of its own;
    the module's name (on ``PYTHONPATH=.local/builds``)."""
    name = "distill_bench_profiling"
    check = subprocess.run([str(made.python), "-c", "import pyinstrument"], capture_output=True)
    if check.returncode != 0:
        print(f"installing pyinstrument into the environment of {made.short} (once)", file=sys.stderr, flush=True)
        subprocess.run([str(made.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "pyinstrument"], check=True, timeout=600)
    (made.root.parent / f"{name}.py").write_text((ROOT / "benchmarks" / "profiling.py").read_text())
    return name
