"""A transactional producer that survives a broker restart: aiokafka kills it on a closed connection.

Before each transactional request, aiokafka's sender looks up the coordinator of the
transaction (or of the group) with a ``FindCoordinator`` request (``Sender._find_coordinator``).
It retries the lookup when the answer is "not available", "not ready" or "timed out", but
any other error, a connection that closed with the request in flight among them, ends the
sender's loop for good: every send of that producer fails ("Unexpected error during batch
delivery"), Faust's consumer crashes on it, and the worker stops. A broker that shuts down
resigns as coordinator first, so the producers of a busy worker are looking up their
coordinators again just as the connection closes: seen as a worker that stopped reading for
good during the broker-restart test (CI, and one restart of two in a loop of that test).

An error aiokafka itself marks retriable (``KafkaError.retriable``: a closed connection,
stale metadata, ...) is retried here like the ones the sender already retries: refresh the
metadata, wait the producer's retry backoff, and ask again. Any other error still ends the
producer, as before.
"""

import asyncio
import logging

from aiokafka.errors import KafkaError
from aiokafka.producer.sender import Sender

_aiokafka_find_coordinator = Sender._find_coordinator
logger = logging.getLogger(__name__)


async def _find_coordinator_retrying(self: Sender, coordinator_type, coordinator_key):
    while True:
        try:
            return await _aiokafka_find_coordinator(self, coordinator_type, coordinator_key)
        except KafkaError as err:
            # aiokafka wraps what the lookup raised in a plain KafkaError ``from`` it.
            cause = err.__cause__
            if not (isinstance(cause, KafkaError) and cause.retriable):
                raise
            logger.warning("Looking up the coordinator for %s failed (%r); asking again", coordinator_key, cause)
        await self.client.force_metadata_update()
        await asyncio.sleep(self._retry_backoff)


def install() -> None:
    """Retry a coordinator lookup that failed with a retriable error, in every producer."""
    Sender._find_coordinator = _find_coordinator_retrying
