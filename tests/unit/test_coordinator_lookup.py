"""A coordinator lookup cut off by a closing connection is asked again, not fatal to the producer."""

from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, TransactionalIdAuthorizationFailed
from aiokafka.producer.sender import Sender
from aiokafka.util import create_future

from streams.faust_fixes import coordinator_lookup


class LookupClient:
    """Answers the lookups with ``answers`` in turn: an exception is raised, a node id returned."""

    def __init__(self, *answers) -> None:
        self.answers, self.lookups, self.metadata_updates = list(answers), 0, 0

    async def coordinator_lookup(self, coordinator_type, coordinator_key):
        self.lookups += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def ready(self, node_id, *, group=None) -> bool:
        return True

    def force_metadata_update(self):
        self.metadata_updates += 1
        future = create_future()
        future.set_result(True)
        return future


def sender(client: LookupClient) -> SimpleNamespace:
    return SimpleNamespace(client=client, _txn_manager=SimpleNamespace(transactional_id="tid"),
                           _coordinators={}, _retry_backoff=0.001)


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(Sender, "_find_coordinator", Sender._find_coordinator)  # undone after the test
    coordinator_lookup.install()


async def test_aiokafka_alone_ends_the_producer_on_a_closed_connection():
    client = LookupClient(KafkaConnectionError("Connection at 127.0.0.1:9092 closed"), 1)
    with pytest.raises(KafkaError):
        await coordinator_lookup._aiokafka_find_coordinator(sender(client), 1, "tid")


async def test_a_lookup_cut_off_by_a_closing_connection_is_asked_again(patched):
    client = LookupClient(KafkaConnectionError("Connection at 127.0.0.1:9092 closed"),
                          KafkaConnectionError("Connection at 127.0.0.1:9092 closed"), 7)
    found = sender(client)
    assert await Sender._find_coordinator(found, 1, "tid") == 7
    assert (client.lookups, client.metadata_updates) == (3, 2)
    assert found._coordinators == {1: 7}


async def test_an_error_that_is_not_retriable_still_ends_the_producer(patched):
    client = LookupClient(TransactionalIdAuthorizationFailed("tid"), 7)
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await Sender._find_coordinator(sender(client), 1, "tid")
    assert client.lookups == 1
