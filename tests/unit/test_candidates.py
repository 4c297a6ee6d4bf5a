"""Candidate batches: grouping, order, size limit, and the partition of a task."""

import orjson
from aiokafka.partitioner import DefaultPartitioner

from streams.faust_app.candidates import BATCH_BYTES, CandidateBatches, target_partition, read_batch


def candidate(run_id: str, text: str = "t") -> bytes:
    return orjson.dumps({"run_id": run_id, "run": {"text": text}, "score_source": None})


def test_candidates_are_grouped_by_source_and_pair_partition_in_the_order_decided():
    batches = CandidateBatches()
    for source, target, mark, run_id in [(0, 1, 5.0, "a"), (1, 1, None, "b"), (0, 1, 6.0, "c"), (0, 0, 7.0, "d")]:
        assert batches.add(source, target, mark, candidate(run_id)) is None
    taken = batches.take()
    assert [(s, t) for s, t, _ in taken] == [(0, 0), (0, 1), (1, 1)]
    assert [(m, c["run_id"]) for m, c in read_batch(taken[1][2])] == [(5.0, "a"), (6.0, "c")]
    assert read_batch(taken[2][2]) == [(None, orjson.loads(candidate("b")))]
    assert batches.take() == []


def test_a_group_past_the_size_limit_is_handed_back_before_the_candidate_that_overflows_it():
    batches, big = CandidateBatches(), "x" * (BATCH_BYTES // 3)
    assert batches.add(0, 0, 1.0, candidate("a", big)) is None
    assert batches.add(0, 0, 2.0, candidate("b", big)) is None
    full = batches.add(0, 0, 3.0, candidate("c", big))
    assert [c["run_id"] for _, c in read_batch(full)] == ["a", "b"] and len(full) <= BATCH_BYTES
    ((_, _, rest),) = batches.take()
    assert [c["run_id"] for _, c in read_batch(rest)] == ["c"]


def test_a_task_goes_to_the_partition_its_task_id_key_went_to():
    partitioner = DefaultPartitioner()
    for task_id in ["task-1", "scrum_review:src/auth/token.rs", "ü", ""]:
        for partitions in (1, 2, 3, 12):
            assert target_partition(task_id, partitions) == partitioner(task_id.encode(), list(range(partitions)), [])
