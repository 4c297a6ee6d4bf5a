"""The Python peer: a Quix Streams application doing the pipeline's RAG/SFT work, exactly-once.

    .local/venvs/quixstreams-<version>/bin/python -m benchmarks.peers.quix_peer \\
        --bootstrap HOST:PORT --inputs PREFIX --outputs PREFIX --group GROUP --state-dir DIR

Reads ``{inputs}evidence`` and ``{inputs}scored-runs`` (co-partitioned, keyed by run id),
concatenated into one dataframe so that a run's two records meet in one state store (Quix's
RocksDB store, with its changelog topic); ``join.on_message`` decides, and each message it
makes goes to ``{outputs}rag-samples``, ``{outputs}sft-samples`` or ``{outputs}quarantine``,
keyed by sample or quarantine id. Run by ``benchmarks/peer.py`` in a virtual environment of its
own (``benchmarks/peers/venv.py``): it imports nothing of ``streams/`` or ``schemas/``.

Quix Streams' defaults except: ``processing_guarantee="exactly-once"``, reading from the
earliest offset, WARNING logs, and ``--commit-interval`` (default: Quix's own 5 s).
"""

from __future__ import annotations

import argparse
import logging

from quixstreams import Application, State, message_context
from quixstreams.models.serializers import Serializer

from benchmarks.peers.join import on_message
from benchmarks.peers.records import QUARANTINE, Emit, Source

OUTPUTS = ("rag-samples", "sft-samples", QUARANTINE)


class EmitValue(Serializer):
    """An ``Emit``'s bytes as the message value (None: a tombstone)."""

    def __call__(self, value: Emit, ctx) -> bytes | None:
        return value.value


def build(args: argparse.Namespace) -> Application:
    app = Application(
        broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
        processing_guarantee="exactly-once", state_dir=args.state_dir, commit_interval=args.commit_interval,
        loglevel="WARNING",
    )
    evidence_topic = f"{args.inputs}evidence"
    inputs = [app.topic(f"{args.inputs}{name}", key_deserializer="str", value_deserializer="bytes")
              for name in ("evidence", "scored-runs")]
    outputs = {name: app.topic(f"{args.outputs}{name}", key_serializer="str", value_serializer=EmitValue())
               for name in OUTPUTS}

    def process(value: bytes | None, key: str | None, timestamp: int, headers, state: State) -> list[Emit]:
        ctx = message_context()
        source = Source(ctx.topic, ctx.partition, ctx.offset, key, timestamp)
        return on_message(state, value, source, ctx.topic == evidence_topic)

    sdf = app.dataframe(inputs[0]).concat(app.dataframe(inputs[1]))
    sdf = sdf.apply(process, stateful=True, metadata=True, expand=True)
    sdf = sdf.set_headers(lambda emit, key, timestamp, headers: emit.headers)
    sdf.to_topic(lambda emit, key, timestamp, headers: outputs[emit.topic], key=lambda emit: emit.key)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--inputs", required=True, help="prefix of the input topics")
    parser.add_argument("--outputs", required=True, help="prefix of the output topics (they must exist)")
    parser.add_argument("--group", required=True, help="consumer group (fresh: the peer reads from the start)")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--commit-interval", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    build(args).run()


if __name__ == "__main__":
    main()
