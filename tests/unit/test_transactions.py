"""The commit wrapper of ``streams.transactions``: a commit that ended every transaction
stops the commits that follow only until a rebalance starts fresh transactions."""

import asyncio
from types import SimpleNamespace

import pytest

from streams import transactions


class StateCache:
    async def flush(self) -> int:
        return 0


@pytest.fixture
def manager(monkeypatch):
    """A TransactionManager as the wrapper sees it, Faust's own commit and rebalance recorded."""
    committed = []

    async def faust_commit(self, offsets, start_new_transaction=True):
        committed.append((dict(offsets), start_new_transaction))
        return True

    async def faust_on_rebalance(self, assigned, revoked, newly_assigned):
        return None

    monkeypatch.setattr(transactions, "_faust_commit", faust_commit)
    monkeypatch.setattr(transactions, "_faust_on_rebalance", faust_on_rebalance)
    app = SimpleNamespace(distill_processing_lock=asyncio.Lock(), distill_state_cache=StateCache(),
                          producer=SimpleNamespace(buffer=SimpleNamespace(size=0, should_stop=False)))
    thread = SimpleNamespace(tp_last_committed_at={})
    return SimpleNamespace(app=app, producer=SimpleNamespace(_transaction_producers={}), committed=committed,
                           consumer=SimpleNamespace(_thread=thread))


async def test_after_a_revocation_ended_the_transactions_the_next_assignment_commits_again(manager):
    # Faust's wait_empty before a revocation: commit what was processed, start no new transaction.
    assert await transactions._commit_whole_events(manager, {"evidence-0": 10}, start_new_transaction=False)
    assert not await transactions._commit_whole_events(manager, {"evidence-0": 11})  # none open now
    await transactions._on_rebalance_fresh_producers(manager, set(), set(), set())
    assert await transactions._commit_whole_events(manager, {"evidence-0": 12})
    assert manager.committed == [({"evidence-0": 10}, False), ({"evidence-0": 12}, True)]


async def test_a_stopping_workers_last_commit_is_the_last(manager):
    assert await transactions._commit_whole_events(manager, {"scored-runs-1": 5}, start_new_transaction=False)
    assert not await transactions._commit_whole_events(manager, {"scored-runs-1": 6})
    assert manager.committed == [({"scored-runs-1": 5}, False)]


async def test_a_transactions_commit_counts_as_a_commit_for_fausts_livelock_check(manager):
    assert await transactions._commit_whole_events(manager, {"evidence-0": 10, "scored-runs-0": 4})
    assert set(manager.consumer._thread.tp_last_committed_at) == {"evidence-0", "scored-runs-0"}
