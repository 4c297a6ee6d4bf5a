"""Peers: other Python stream processors doing the pipeline's RAG/SFT work, for the benchmark's
ratios (``bash scripts/bench.sh --peer``). Each runs in a virtual environment of its own and
imports nothing of ``streams/`` or ``schemas/``; this package imports nothing at all."""
