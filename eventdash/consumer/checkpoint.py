"""The transaction cycle: one object owns the partition states, their next offsets, what changed
and the open Kafka transaction.

Everything the aggregator derives from input records (snapshots, dead letters) is produced inside
the open transaction, and :meth:`Checkpoint.commit` publishes the changed partitions' snapshots
(and the minutes that left their horizon, to the history topic) and sends the input offsets
(``send_offsets_to_transaction``, KIP-447) in the same transaction.
A crash at any moment therefore loses nothing and counts nothing twice.

Failures:
- a retriable error is retried until a deadline (``TRANSACTION_DEADLINE_SECONDS``), then raised;
- an abortable one aborts the transaction and raises :class:`TransactionAborted`: the caller
  rebuilds the states from the last committed snapshots (:meth:`Aggregator._rewind`);
- a fatal one (fenced producer, ...) is raised: the process must exit and be restarted;
- a call that hangs in librdkafka past ``HUNG_CALL_SECONDS`` ends the process (code 75), since
  nothing in the process can interrupt it (confluentinc/librdkafka#5456).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from .. import history
from ..kafka.clients import produce_with_backpressure
from ..observability.metrics import ConsumerMetrics
from ..snapshots import SnapshotTooLarge, encode, snapshot_key
from ..stats.engine import PartitionState

logger = logging.getLogger(__name__)

TRANSACTION_DEADLINE_SECONDS = 30.0
HUNG_CALL_SECONDS = TRANSACTION_DEADLINE_SECONDS + 15
EXIT_HUNG = 75
RETRY_BACKOFF_SECONDS = 0.5
CLOSE_DEADLINE_SECONDS = 3.0  # at shutdown: the whole program has 6 s (eventdash.__main__)


class TransactionAborted(Exception):
    """The open transaction was aborted: every state must be rebuilt from its last committed snapshot."""


def hung_call_exit(name: str) -> None:
    logger.critical("%s did not return within %.0f s; exiting so that the supervisor restarts this "
                    "process: the open transaction will be aborted, nothing is lost", name, HUNG_CALL_SECONDS)
    logging.shutdown()
    os._exit(EXIT_HUNG)


@contextmanager
def watchdog(name: str, seconds: float = HUNG_CALL_SECONDS,
             on_hang: Callable[[str], None] = hung_call_exit) -> Iterator[None]:
    """Run ``on_hang(name)`` from another thread if the block has not finished within ``seconds``."""
    timer = threading.Timer(seconds, on_hang, args=(name,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def retry_transaction_op(operation: Callable[[float], Any], name: str, *,
                         deadline_seconds: float = TRANSACTION_DEADLINE_SECONDS,
                         stop: threading.Event | None = None, clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call ``operation(timeout)`` until it succeeds, retrying retriable errors until the deadline."""
    deadline = clock() + deadline_seconds
    attempts = 0
    while True:
        attempts += 1
        remaining = max(0.1, deadline - clock())
        try:
            with watchdog(name):
                return operation(remaining)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if not error.retriable() or (stop is not None and stop.is_set()):
                raise
            if clock() + RETRY_BACKOFF_SECONDS >= deadline:
                logger.error("%s still failing after %d attempts in %.0f s: %s", name, attempts,
                             deadline_seconds, error)
                raise
            logger.warning("retrying %s (attempt %d): %s", name, attempts, error)
            sleep(RETRY_BACKOFF_SECONDS)


def is_fatal(error: KafkaError) -> bool:
    """librdkafka raises fatal errors as events of code ``_FATAL`` whose ``fatal()`` can be false."""
    return error.fatal() or error.code() == KafkaError._FATAL


class Checkpoint:
    """States, next offsets, the dirty set and the open transaction of one aggregator process."""

    def __init__(self, producer: Producer, *, events_topic: str, statistics_topic: str, history_topic: str,
                 group_metadata: Callable[[], Any], metrics: ConsumerMetrics,
                 interval_seconds: float, heartbeat_seconds: float, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000):
        self.producer = producer
        self.events_topic = events_topic
        self.statistics_topic = statistics_topic
        self.history_topic = history_topic
        self.group_metadata = group_metadata
        self.metrics = metrics
        self.interval_seconds = interval_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.stop = stop
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self.states: dict[int, PartitionState] = {}
        self.next_offsets: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.published_at: dict[int, float] = {}  # partition -> clock() of its last committed snapshot
        self.in_transaction = False
        self.last_commit = clock()  # when the last commit began
        self.last_commit_end = self.last_commit
        self.committed = 0
        self.aborted = 0

    # -- partitions ------------------------------------------------------------------------

    def add(self, state: PartitionState, next_offset: int) -> None:
        self.states[state.partition] = state
        self.next_offsets[state.partition] = next_offset
        self.published_at[state.partition] = self._clock()
        self.metrics.assigned.set(len(self.states))

    def remove(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.states.pop(partition, None)
            self.next_offsets.pop(partition, None)
            self.dirty.discard(partition)
            self.published_at.pop(partition, None)
        self.metrics.assigned.set(len(self.states))

    # -- the cycle -------------------------------------------------------------------------

    def begin(self) -> None:
        if not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True

    def produce(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        """Produce a record inside the open transaction (begun here if needed)."""
        self.begin()
        try:
            produce_with_backpressure(self.producer, topic, value, **kwargs)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:
                raise
            logger.warning("produce refused in the open transaction (%s): aborting it", exc.args[0])
            self.abort()
            raise TransactionAborted(str(exc.args[0])) from None

    def processed(self, partition: int, offset: int) -> None:
        """The record at ``offset`` is fully reflected in the state of ``partition``."""
        self.next_offsets[partition] = offset + 1
        self.dirty.add(partition)

    def due(self) -> bool:
        """Time to commit: changes older than the interval, or a heartbeat (an idle consumer still
        commits every ``heartbeat_seconds``, so a snapshot's age tells stuck from idle)."""
        if self.dirty:
            return self.seconds_until_due() == 0.0
        return bool(self.states) and self._clock() - self.last_commit >= self.heartbeat_seconds

    def seconds_until_due(self) -> float:
        """How long the consumer may wait for input before :meth:`due` can turn true (the interval
        if nothing changed yet: a change arriving meanwhile is due as soon as it is processed)."""
        now = self._clock()
        elapsed = now - self.last_commit
        if self.dirty:  # an interval after the last commit began, and half of one after it ended
            return max(0.0, self.interval_seconds - elapsed,
                       self.interval_seconds / 2 - (now - self.last_commit_end))
        if self.states:
            return max(0.0, min(self.interval_seconds, self.heartbeat_seconds - elapsed))
        return self.interval_seconds

    def commit(self, deadline_seconds: float = TRANSACTION_DEADLINE_SECONDS) -> None:
        """Publish the changed (or, as a heartbeat, all) snapshots with the input offsets, atomically.

        The interval runs from one commit's start to the next one's, so a slow commit does not
        stretch the cadence, but at least half an interval of consuming separates two commits (a
        slow broker must not turn every batch into a transaction)."""
        started = self._clock()
        if self.dirty:  # the changed partitions, and any other whose last snapshot is a heartbeat old
            quiet = {p for p, at in self.published_at.items() if started - at >= self.heartbeat_seconds}
            partitions = sorted(self.dirty | quiet)
        else:
            partitions = sorted(self.states)
        self.begin()
        now_ms = self._wall_clock_ms()
        offsets = []
        for partition in partitions:
            next_offset = self.next_offsets[partition]
            state = self.states[partition]
            try:
                value = encode(state.to_snapshot(next_offset=next_offset, updated_at_ms=now_ms))
            except SnapshotTooLarge:
                logger.exception("snapshot over its budget; dropping its product detail")
                state.shed_detail()
                value = encode(state.to_snapshot(next_offset=next_offset, updated_at_ms=now_ms))
            self.produce(self.statistics_topic, value, key=snapshot_key(self.events_topic, partition),
                         partition=partition)
            for minute, counts in state.take_finished_minutes():  # lost with an abort: the rewind redoes them
                self.produce(self.history_topic, history.encode(history.HistoryRecord(partition, minute, counts)),
                             key=history.history_key(self.events_topic, partition, minute), partition=partition)
            offsets.append(TopicPartition(self.events_topic, partition, next_offset))
        try:
            metadata = self.group_metadata()
            retry_transaction_op(
                lambda timeout: self.producer.send_offsets_to_transaction(offsets, metadata, timeout),
                "send_offsets_to_transaction", stop=self.stop, deadline_seconds=deadline_seconds)
            retry_transaction_op(self.producer.commit_transaction, "commit_transaction", stop=self.stop,
                                 deadline_seconds=deadline_seconds)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if is_fatal(error) or not error.txn_requires_abort():
                raise
            logger.warning("transaction aborted (%s); rewinding to the last committed snapshots", error)
            self.abort(deadline_seconds)
            raise TransactionAborted(str(error)) from None
        self.in_transaction = False
        self.dirty.clear()
        self.last_commit, self.last_commit_end = started, self._clock()
        self.published_at.update(dict.fromkeys(partitions, self.last_commit))
        self.committed += 1
        self.metrics.snapshots.inc(len(partitions))
        self.metrics.commits.inc()

    def abort(self, deadline_seconds: float = TRANSACTION_DEADLINE_SECONDS) -> None:
        """Abort the open transaction; the caller must rewind every state (see :class:`TransactionAborted`)."""
        if self.in_transaction:
            retry_transaction_op(self.producer.abort_transaction, "abort_transaction", stop=self.stop,
                                 deadline_seconds=deadline_seconds)
            self.aborted += 1
            self.metrics.aborts.inc()
        self.in_transaction = False
        self.dirty.clear()

    def close(self, deadline_seconds: float = CLOSE_DEADLINE_SECONDS) -> None:
        """At shutdown: commit what changed, or abort an empty transaction, within the deadline. Never raises."""
        try:
            if self.in_transaction and self.dirty:
                self.commit(deadline_seconds)
            else:
                self.abort(deadline_seconds)
        except (KafkaException, TransactionAborted) as exc:
            logger.warning("could not finish the last transaction at shutdown (the next start redoes it): %s", exc)
            self.in_transaction = False  # nothing after close (e.g. _on_revoke in consumer.close()) retries it
            self.dirty.clear()
