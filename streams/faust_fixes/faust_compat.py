"""Every Faust, mode and aiokafka internal this project replaces or relies on by name, in one
registry, and the check the worker runs before it starts (``check``).

The exactly-once guarantee rests on methods replaced by name (``streams/faust_fixes/transactions.py``,
``resume_order.py``, ``state_cache.py``, ...). A Faust release that renames one, changes its
parameters or stops calling it where the patch expects would drop a guarantee without a word.
So the worker refuses to start (``FaustIncompatible``, exit 1) when the installed
faust-streaming is not a version the patches were written for, or when a registered method is
missing, its parameters changed, or a call the patch depends on left its source.

There is no setting to skip the check: the signatures can pass while the behaviour a patch
corrects (a race, an ordering) has changed, so a new version is supported by reviewing each
patch below against it, running the ``slow`` suite, and adding it to ``SUPPORTED_FAUST``.
A new patch of a Faust internal must be registered here (``tests/unit/test_faust_compat.py``
finds every assignment to, and every override of, a Faust class in ``streams/``).
"""

import ast
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass
from importlib import metadata

from streams.errors import FaustIncompatible

SUPPORTED_FAUST = ("0.15.3",)  # constraints.txt and pyproject.toml pin it

CONSUMER = "faust.transport.consumer:Consumer"
THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"
STORE = "faust.stores.rocksdb:Store"


@dataclass(frozen=True)
class Internal:
    """One internal: ``owner`` is ``module:Class``; ``params`` the parameter names of a method
    (``*`` and ``**`` marked), None for a data attribute; ``by`` the module that patches or
    reads it; ``original`` the name under which ``by`` keeps Faust's own function when it
    replaces it; ``mentions`` text the source must still hold (the call the patch depends on)."""

    owner: str
    name: str
    params: tuple[str, ...] | None
    by: str
    why: str
    original: str = ""
    mentions: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.owner.split(':')[1]}.{self.name}"


def _m(owner: str, name: str, params: str, by: str, why: str, original: str = "", mentions: tuple = ()) -> Internal:
    return Internal(owner, name, tuple(params.split()), f"streams.{by}", why, original, mentions)


def _a(owner: str, name: str, by: str, why: str) -> Internal:
    return Internal(owner, name, None, f"streams.{by}", why)


REGISTRY: tuple[Internal, ...] = (
    # Replaced on the class (the module keeps Faust's own function as ``original``).
    _m(CONSUMER, "force_commit", "self topics start_new_transaction", "faust_fixes.transactions",
       "a commit takes the processing lock before Faust picks its offsets", "_faust_force_commit",
       ("_filter_tps_with_pending_acks(", "self._commit_tps(")),
    _m("faust.transport.consumer:TransactionManager", "commit", "self offsets start_new_transaction", "faust_fixes.transactions",
       "a commit flushes the state cache and drains the producer buffer, then lets the processing lock go",
       "_faust_commit"),
    _m("faust.transport.consumer:TransactionManager", "on_rebalance", "self assigned revoked newly_assigned",
       "faust_fixes.transactions", "fresh transactional producers at every rebalance (no transaction left open)",
       "_faust_on_rebalance"),
    _m("faust.transport.producer:ProducerBuffer", "_send_pending", "self fut", "faust_fixes.transactions",
       "counts the message in hand, so the commit's drain waits for it", "_faust_send_pending"),
    _m("faust.transport.drivers.aiokafka:Producer", "_settings_extra", "self", "faust_fixes.transactions",
       "the transactional producers retry after 20 ms, not 100 (CONCURRENT_TRANSACTIONS)", "_faust_settings_extra",
       ("self.app.in_transaction",)),
    _m("faust.transport.drivers.aiokafka:Producer", "commit_transactions",
       "self tid_to_offset_map group_id start_new_transaction", "faust_fixes.transactions",
       "the transactions of a worker's partitions commit side by side, not one after the other",
       "_faust_commit_transactions",
       ("self._trn_locks[transactional_id]", "send_offsets_to_transaction(", "commit_transaction()",
        "begin_transaction()")),
    _m(THREAD, "_highwaters", "self partitions", "faust_fixes.transactions",
       "restore up to the broker's last stable offset, not the consumer's None"),
    _m(THREAD, "_create_worker_consumer", "self transport", "faust_fixes.fetch_wait",
       "the fetch wait and size are settings (Faust fixes 1.5 s, 1 byte)", "_faust_create_worker_consumer"),
    _m("faust.tables.recovery:Recovery", "on_recovery_completed", "self generation_id", "faust_fixes.resume_order",
       "stops the flow before the seek, so no stream message is fetched and dropped",
       "_faust_on_recovery_completed", ("consumer.perform_seek()", "self.app.flow_control.resume()")),
    _m(CONSUMER, "perform_seek", "self", "faust_fixes.resume_order",
       "partitions without a commit are sought to their beginning", "_faust_perform_seek"),
    _m(CONSUMER, "_commit_offsets", "self offsets start_new_transaction", "faust_app.state_cache",
       "at-least-once: the state cache is flushed before the offsets commit", "_faust_commit_offsets"),
    _m(CONSUMER, "wait_first", "self *coros timeout", "faust_fixes.delivery",
       "a fetched message is delivered inline, raced against a rebalance only if it waits", "_faust_wait_first"),
    # Overridden in a subclass (``streams.faust_fixes.state_store``'s stores).
    _m(STORE, "on_rebalance", "self assigned revoked newly_assigned generation_id", "faust_fixes.state_store",
       "every held partition is wiped and restored from the committed changelog"),
    _m(STORE, "_open_for_partition", "self partition", "faust_fixes.state_store", "no write-ahead log"),
    _m(STORE, "persisted_offset", "self tp", "faust_fixes.state_store", "-1: nothing held, restore from the changelog's start"),
    _m(STORE, "set_persisted_offset", "self tp offset", "faust_fixes.state_store",
       "keeps no offset (an aborted send's stood above the changelog)"),
    _m(STORE, "apply_changelog_batch", "self batch to_key to_value", "faust_fixes.state_store",
       "records how far each restore got, for the restore guard"),
    _m("faust.stores.rocksdb:RocksDBOptions", "as_options", "self", "faust_fixes.state_store",
       "one shared block cache per process"),
    # Called or relied on as they are.
    _m(CONSUMER, "_drain_messages", "self fetcher", "faust_fixes.delivery", "its call of wait_first is the one delivered inline",
       mentions=("self.wait_first(", "callback(message), self.suspend_flow.wait()")),
    _m(CONSUMER, "commit_and_end_transactions", "self", "faust_fixes.transactions",
       "ends every transaction before a revocation; the commit patch notes it", mentions=("start_new_transaction=False",)),
    _m(CONSUMER, "commit", "self topics start_new_transaction", "faust_fixes.prompt_commit",
       "a commit asked for between the timer's: one at a time with them", mentions=("maybe_wait_for_commit_to_finish",)),
    _m(CONSUMER, "stop_flow", "self", "faust_fixes.resume_order", "called before Faust's seek after recovery"),
    _m(CONSUMER, "on_buffer_full", "self tp", "faust_app.alignment", "holds a scores partition in the consumer"),
    _m(CONSUMER, "on_buffer_drop", "self tp", "faust_app.alignment", "lets a held scores partition go"),
    _m(THREAD, "seek_to_beginning", "self *partitions", "faust_fixes.resume_order", "seeks partitions without a commit"),
    _m(THREAD, "_ensure_consumer", "self", "faust_fixes.transactions",
       "the aiokafka consumer asked for end offsets (also the watchdog)"),
    _m("faust.transport.drivers.aiokafka:Producer", "stop_transaction", "self transactional_id", "faust_fixes.transactions",
       "stops every transactional producer at a rebalance"),
    _m(STORE, "_db_for_partition", "self partition", "faust_app.state_cache", "the cache writes a partition's RocksDB directly"),
    _m(STORE, "partition_path", "self partition", "faust_fixes.state_store", "the folder wiped at a rebalance"),
    _m("faust.streams:Stream", "take_events", "self max_ within", "faust_app.agents.batches", "batch-at-a-time agents"),
    _m("aiokafka.producer.sender:Sender", "_find_coordinator", "self coordinator_type coordinator_key",
       "faust_fixes.coordinator_lookup", "a lookup that failed on a closed connection is retried, not fatal",
       "_aiokafka_find_coordinator", ("raise KafkaError(repr(err)) from err",)),
    _m("aiokafka:AIOKafkaProducer", "create_batch", "self", "faust_app.outbox", "outputs sent as whole record batches"),
    _m("aiokafka:AIOKafkaProducer", "send_batch", "self batch topic *partition", "faust_app.outbox",
       "outputs sent as whole record batches"),
    # Data attributes read or written.
    _a(CONSUMER, "_committed_offset", "faust_fixes.skip_guard",
       "the group's committed offsets (also resume_order, the watchdog)"),
    _a("faust.transport.drivers.aiokafka:Consumer", "_thread", "faust_fixes.resume_order", "the consumer thread that seeks"),
    _a("faust.transport.drivers.aiokafka:Producer", "_transaction_producers", "faust_app.outbox",
       "a source partition's producer"),
    _a("faust.transport.producer:ProducerBuffer", "message_sent", "faust_fixes.transactions", "the drain waits on it"),
    _a(THREAD, "tp_last_committed_at", "faust_fixes.transactions", "a transaction's commit counts for Faust's livelock check"),
    _a(STORE, "_dbs", "faust_fixes.state_store", "the open databases of a store (also the state cache)"),
    _a(STORE, "offset_key", "faust_app.state_cache", "the store's own key, skipped as a table row"),
    _a("faust.tables.recovery:Recovery", "active_highwaters", "faust_fixes.restore_guard", "how far each restore had to read"),
    _a("aiokafka:AIOKafkaConsumer", "_fetch_max_wait_ms", "faust_fixes.fetch_wait", "set before the fetcher is built"),
    _a("aiokafka:AIOKafkaConsumer", "_fetch_min_bytes", "faust_fixes.fetch_wait", "set before the fetcher is built"),
    _a("aiokafka:AIOKafkaConsumer", "_subscription", "faust_app.agents.watchdog", "a partition's fetch state for /health"),
)


def installed_version() -> str:
    return metadata.version("faust-streaming")


def check(registry: tuple[Internal, ...] = REGISTRY) -> None:
    """Raise ``FaustIncompatible`` unless the installed Faust is one the patches were written for
    and every registered internal is there with the parameters the patch expects."""
    problems = []
    version = installed_version()
    if version not in SUPPORTED_FAUST:
        problems.append(
            f"faust-streaming {version} is installed, but the Faust patches (streams/faust_fixes/faust_compat.py) were "
            f"written for {', '.join(SUPPORTED_FAUST)}"
        )
    problems += [problem for internal in registry if (problem := mismatch(internal))]
    if problems:
        raise FaustIncompatible(
            "; ".join(problems) + ". Operator action: install the supported Faust "
            f"(faust-streaming=={SUPPORTED_FAUST[-1]}, as constraints.txt pins it), or review each patch named "
            "against the installed Faust, run the slow suite and update streams/faust_fixes/faust_compat.py."
        )


def mismatch(internal: Internal) -> str | None:
    """What changed in one internal, as a sentence naming the patch, or None."""
    where = f"{internal.label} ({internal.by}: {internal.why})"
    module_name, _, qualname = internal.owner.partition(":")
    try:
        owner = importlib.import_module(module_name)
        for part in qualname.split("."):
            owner = getattr(owner, part)
    except (ImportError, AttributeError):
        return f"{where}: {internal.owner} no longer exists"
    if internal.params is None:
        return None if _has_attribute(owner, internal.name) else f"{where}: the attribute is gone"
    try:
        function = inspect.getattr_static(owner, internal.name)
    except AttributeError:
        return f"{where}: the method is gone"
    own = _faust_own(internal, function)
    params, source = (_params(own), _source(own)) if own is not None else _from_source(owner, internal.name)
    if params != internal.params:
        return f"{where}: its parameters are ({', '.join(params)}), the patch expects ({', '.join(internal.params)})"
    missing = [text for text in internal.mentions if text not in source]
    if missing:
        return f"{where}: its source no longer contains {', '.join(repr(t) for t in missing)}"
    return None


def _faust_own(internal: Internal, function):
    """Faust's function, also when this project's patch is installed in its place (the patch
    module keeps the original); None when it is installed and keeps none."""
    function = getattr(function, "__func__", function)
    if not getattr(function, "__module__", "").startswith("streams."):
        return function
    return getattr(importlib.import_module(internal.by), internal.original) if internal.original else None


def _from_source(owner: type, name: str) -> tuple[tuple[str, ...], str]:
    """The parameters and source of ``name`` as the owner's source file defines it."""
    for cls in owner.__mro__:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in tree.body[0].body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                a = node.args
                params = [p.arg for p in a.posonlyargs + a.args]
                params += [f"*{a.vararg.arg}"] if a.vararg else []
                params += [("*" if i == 0 and not a.vararg else "") + p.arg for i, p in enumerate(a.kwonlyargs)]
                params += [f"**{a.kwarg.arg}"] if a.kwarg else []
                return tuple(params), ast.unparse(node)
    return (), ""


def _params(function) -> tuple[str, ...]:
    marks = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    params = inspect.signature(function).parameters.values()
    names, keyword_only_seen = [], False
    for p in params:
        mark = marks.get(p.kind, "")
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not keyword_only_seen:
            mark = "*"  # a bare * before the first keyword-only one
        keyword_only_seen = keyword_only_seen or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.KEYWORD_ONLY)
        names.append(mark + p.name)
    return tuple(names)


def _source(function) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def _has_attribute(owner: type, name: str) -> bool:
    """A class attribute, or one that ``__init__`` (of the class or a base) assigns."""
    if hasattr(owner, name):
        return True
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]+)?=")
    return any(assigned.search(_source(cls)) for cls in getattr(owner, "__mro__", ()) if cls is not object)
