"""Shared fixtures. Integration tests share one real broker per session (see tests/integration)."""

# Imported before any Faust test runs: otherwise hypothesis' pytest plugin imports it at the
# terminal summary, after Faust's worker machinery has changed the recursion state, and
# CPython 3.11's parser fails with "AST constructor recursion depth mismatch".
import hypothesis  # noqa: F401
