"""One real local broker per test session; each test gets its own topic prefix and app id."""

import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from streams.broker import kafka_io
from streams.broker.localkafka.broker import LocalKafka
from streams.commands.export import export
from streams.commands.ingest import publish_files
from streams.commands.wait import wait_caught_up
from streams.commands.worker import child_worker
from streams.settings import DistillSettings

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "streams" / "sample_data"
# The guarantee the workers of the integration tests run with (both are supported).
GUARANTEE = os.environ.get("DISTILL_TEST_GUARANTEE", "exactly_once")


@pytest.fixture(scope="session")
def broker() -> str:
    """The local broker of `distill kafka up` (started here when it is not running)."""
    kafka = LocalKafka.from_env()
    kafka.up(timeout=180)
    return kafka.bootstrap


@pytest.fixture
async def make_settings(broker, tmp_path, request):
    """Settings with a prefix, app id and state folder of this test alone; the test's topics
    are deleted after it. (Left on the shared broker, every run of the suite added ~1,000
    partitions: at 9,652 its 512 MiB heap was 93% full and it spent a core on GC every ~4 s.)"""
    made: list[DistillSettings] = []

    def make(**overrides) -> DistillSettings:
        tag = f"{request.node.name[:30]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
        defaults = dict(
            bootstrap=broker, topic_prefix=f"it.{tag}.", data_dir=tmp_path / tag, web_enabled=False,
            pair_idle_close=2.0, processing_guarantee=GUARANTEE, log_level="info",
        )
        made.append(DistillSettings(**(defaults | overrides)))
        return made[-1]

    yield make
    for settings in made:
        await kafka_io.delete_prefixed(settings)


@asynccontextmanager
async def running_worker(settings: DistillSettings):
    async with child_worker(settings, settings.data_dir / "worker.log") as process:
        try:
            yield process
        finally:
            # Also when the test failed meanwhile (a wait that timed out): why the worker stopped
            # is in its log, which is gone with the test's folder (CI keeps only the output).
            if process.poll() is not None:
                log = (settings.data_dir / "worker.log").read_text()[-3000:]
                raise AssertionError(f"the worker exited with {process.returncode}:\n{log}")


def hooks_path(hooks: Path) -> str:
    """PYTHONPATH for a child worker that loads ``hooks/sitecustomize.py``: the hooks, then this
    checkout. A sitecustomize runs before the child puts its working folder on ``sys.path``,
    so its ``import streams`` otherwise finds whatever checkout the editable install names."""
    return os.pathsep.join([str(hooks), str(Path(__file__).resolve().parents[2])])


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows as JSONL: dicts are encoded, bytes go as they are (for broken lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows))
    return path


async def ingest(settings: DistillSettings, evidence: list[Path] = (), scores: list[Path] = ()) -> None:
    await publish_files(settings, {"evidence": list(evidence), "scored-runs": list(scores)})


async def settle_and_export(settings: DistillSettings, timeout: float = 120) -> dict[str, list[dict]]:
    """Wait for the worker, export everything, and return the rows of each file by kind."""
    await wait_caught_up(settings, timeout)
    out = settings.data_dir / "export"
    await export(settings, out, ["rag", "sft", "preference", "quarantine"])
    files = {"rag": "rag/samples.jsonl", "sft": "sft/samples.jsonl",
             "preference": "preference/chosen_rejected.jsonl", "quarantine": "quarantine/records.jsonl"}
    return {kind: [orjson.loads(line) for line in (out / rel).read_bytes().splitlines()] for kind, rel in files.items()}
