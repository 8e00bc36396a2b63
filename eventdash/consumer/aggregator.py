"""The statistics engine: ``events`` in, per-partition snapshots out, exactly once.

One partition state (:class:`~eventdash.stats.partition_state.PartitionStats`, or its Rust twin
chosen by :mod:`eventdash.stats.engine`) per assigned input partition; the
transaction cycle (snapshots, dead letters and input offsets committed together) belongs to
:class:`~eventdash.consumer.checkpoint.Checkpoint`. On assignment a partition's state is
restored from its newest valid snapshot and consumption resumes at the snapshot's
``next_offset``, so a crash at any point loses nothing and counts nothing twice.

What this process never does is stay alive doing nothing:
- any single record that fails, for any reason, goes to the dead-letter topic with a reason
  (``internal_error`` and the exception class for the unexpected) and processing goes on;
- a fatal client error (``KafkaError._FATAL`` events included, whose ``fatal()`` can be false),
  a transaction past its deadline or a hung librdkafka call ends the process with a non-zero
  code, and supervisord starts it again;
- a process without partitions while the group leaves some partitions unconsumed exits too
  (:class:`~eventdash.consumer.liveness.GroupWatch`).
Members are dynamic (no ``group.instance.id``): a static member can be fenced by its own
rejoin after a hung broker. A clean stop leaves the group at once; a crashed member's
partitions move after ``session.timeout.ms``.
"""
from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from ..config import Settings
from ..events.validation import InvalidEvent, parse_event
from ..kafka.admin import ensure_topics, make_admin, partition_count, wait_for_broker
from ..kafka.clients import AGGREGATOR_FETCH_SETTINGS, make_consumer, make_producer
from ..observability.metrics import ConsumerMetrics, serve
from ..snapshots import HEARTBEAT_SECONDS, PRODUCER_MAX_MESSAGE_BYTES, InvalidSnapshot, Snapshot, read_latest
from ..stats.engine import PartitionState, load_engine
from .checkpoint import Checkpoint, TransactionAborted, is_fatal, watchdog
from .dead_letters import INTERNAL_ERROR, build_dead_letter
from .identity import claim_transactional_id
from .liveness import GroupWatch

logger = logging.getLogger(__name__)

BATCH = 1000
MAX_WAIT_SECONDS = 0.1  # the longest one consume() call waits for input
MIN_WAIT_SECONDS = 0.001  # when a commit is due now: no busy loop
MAX_CONSECUTIVE_ABORTS = 10
SESSION_TIMEOUT_MS = 6_000  # the broker's minimum: a crashed member's partitions move this soon


class FatalClientError(RuntimeError):
    """librdkafka says this client can no longer work: the process must be restarted."""


class Aggregator:
    def __init__(self, settings: Settings, stop: threading.Event | None = None):
        self.settings = settings
        self.stop = stop or threading.Event()
        self.metrics = ConsumerMetrics()
        self.consumer: Consumer | None = None
        self.reader: Consumer | None = None
        self.checkpoint: Checkpoint | None = None
        self.group_watch: GroupWatch | None = None
        self._logged_skips: set[tuple[int, str]] = set()
        self.engine = load_engine(settings.engine)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        s = self.settings
        identity = claim_transactional_id(s)
        admin = make_admin(s)
        wait_for_broker(admin, s)
        ensure_topics(admin, s)
        events_partitions = partition_count(admin, s.events_topic)
        for topic in (s.statistics_topic, s.history_topic):
            partitions = partition_count(admin, topic)
            if partitions < events_partitions:
                raise RuntimeError(f"{topic} has {partitions} partitions but {s.events_topic} has "
                                   f"{events_partitions}: it needs at least one per input partition")
        producer = make_producer(s, "consumer", **{
            "transactional.id": identity.transactional_id,
            "transaction.timeout.ms": 60_000,
            "linger.ms": 0,
            "message.max.bytes": PRODUCER_MAX_MESSAGE_BYTES,
        })
        with watchdog("init_transactions", s.startup_timeout_seconds + 15):
            producer.init_transactions(s.startup_timeout_seconds)
        serve(self.metrics.registry, s.consumer_metrics_port, "EVENTDASH_CONSUMER_METRICS_PORT", s.metrics_host)
        self.reader = make_consumer(s, "snapshot-reader", f"{s.consumer_group}-snapshot-reader",
                                    **{"fetch.wait.max.ms": 10})
        self.consumer = make_consumer(s, "consumer", s.consumer_group, **{
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 1000,
            **AGGREGATOR_FETCH_SETTINGS,
        })
        self.checkpoint = Checkpoint(
            producer, events_topic=s.events_topic, statistics_topic=s.statistics_topic, history_topic=s.history_topic,
            group_metadata=self.consumer.consumer_group_metadata, metrics=self.metrics,
            interval_seconds=s.snapshot_interval_ms / 1000, heartbeat_seconds=HEARTBEAT_SECONDS, stop=self.stop)
        self.group_watch = GroupWatch(admin, s.consumer_group, s.events_topic, events_partitions,
                                      idle_limit_seconds=SESSION_TIMEOUT_MS / 1000)
        self.consumer.subscribe([s.events_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        logger.info("aggregating %s into %s as %s (group %s, %s engine)", s.events_topic, s.statistics_topic,
                    identity.transactional_id, s.consumer_group, self.engine.name)
        try:
            self._loop()
        finally:
            self._shutdown(producer)
            identity.release()

    def _loop(self) -> None:
        checkpoint = self.checkpoint
        aborts = 0
        while not self.stop.is_set():
            # Wake when the next commit is due: consume() waits for a whole batch or the timeout.
            timeout = min(MAX_WAIT_SECONDS, max(MIN_WAIT_SECONDS, checkpoint.seconds_until_due()))
            messages = self.consumer.consume(num_messages=BATCH, timeout=timeout)
            try:
                if messages:
                    self._process(messages)
                if checkpoint.due():
                    checkpoint.commit()
                    aborts = 0
            except TransactionAborted as exc:
                aborts += 1
                if aborts >= MAX_CONSECUTIVE_ABORTS:
                    raise RuntimeError(f"{aborts} transactions in a row aborted, the last: {exc}") from None
                self._rewind(sorted(checkpoint.states))
            self.group_watch.check(assigned=len(checkpoint.states))

    def _shutdown(self, producer) -> None:
        try:
            if self.checkpoint is not None:
                self.checkpoint.close()
        finally:
            # The transaction step has its own deadline, and the whole stop the program's (6 s,
            # eventdash.__main__): a hung broker cannot hold it past supervisord's stopwaitsecs.
            if self.consumer is not None:
                self.consumer.close()  # a dynamic member leaves the group: its partitions move at once
            if self.reader is not None:
                self.reader.close()
            remaining = producer.flush(1)
            checkpoint = self.checkpoint
            logger.info("consumer stopped: %d transactions committed, %d aborted%s",
                        checkpoint.committed if checkpoint else 0, checkpoint.aborted if checkpoint else 0,
                        f", {remaining} records not flushed" if remaining else "")

    # -- processing ------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        s = self.settings
        checkpoint = self.checkpoint
        checkpoint.begin()
        now_ms = time.time_ns() // 1_000_000
        engine = self.engine
        by_type: dict[str, int] = {}
        index, length = 0, len(messages)
        while index < length:
            if engine.fast:  # as far as it goes; the message it stops at takes the reference path
                run = engine.aggregate_run(messages, index, checkpoint.states, now_ms=now_ms,
                                           future_tolerance_ms=s.future_tolerance_ms, max_bytes=s.max_event_bytes)
                for partition, offset in run.last_offsets:
                    checkpoint.processed(partition, offset)
                for event_type, count in run.counts.items():
                    by_type[event_type] = by_type.get(event_type, 0) + count
                index = run.stop
                if index == length:
                    break
            event_type = self._process_one(messages[index], now_ms)
            if event_type is not None:
                by_type[event_type] = by_type.get(event_type, 0) + 1
            index += 1
        for event_type, count in by_type.items():
            self.metrics.consumed.labels(type=event_type).inc(count)

    def _process_one(self, msg: Message, now_ms: int) -> str | None:
        """The reference path for one message; the type of the event it aggregated, if any."""
        s = self.settings
        error = msg.error()
        if error is not None:
            if is_fatal(error):
                raise FatalClientError(f"consumer: {error}")
            logger.warning("consumer error: %s", error)
            return None
        partition = msg.partition()
        state = self.checkpoint.states.get(partition)
        if state is None:
            return None  # revoked while this batch was in flight
        event_type = None
        try:
            event = parse_event(msg.value(), now_ms=now_ms, future_tolerance_ms=s.future_tolerance_ms,
                                max_bytes=s.max_event_bytes)
            state.apply(event)
        except InvalidEvent as invalid:
            self._reject(msg, state, invalid.reason, invalid.detail)
        except Exception as exc:  # noqa: BLE001 - one record must never stop the aggregation
            logger.exception("internal error on %s[%d]@%d: dead-lettered", msg.topic(), partition, msg.offset())
            self._reject(msg, state, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", type(exc).__qualname__)
        else:
            event_type = event.type
        self.checkpoint.processed(partition, msg.offset())
        return event_type

    def _reject(self, msg: Message, state: PartitionState, reason: str, detail: str,
                error_class: str | None = None) -> None:
        """Dead-letter first, count second: a produce that fails leaves the count untouched."""
        letter = build_dead_letter(msg, reason, detail, error_class)
        self.checkpoint.produce(self.settings.dlq_topic, letter.value, key=letter.key, headers=letter.headers)
        state.record_invalid(reason)
        self.metrics.invalid.labels(reason=reason).inc()

    # -- restore and rebalancing -----------------------------------------------------------

    def _on_invalid_snapshot(self, partition: int, offset: int, error: InvalidSnapshot) -> None:
        self.metrics.snapshots_skipped.labels(reason=error.reason).inc()
        if (partition, error.reason) not in self._logged_skips:  # at most partitions x reasons
            self._logged_skips.add((partition, error.reason))
            logger.warning("skipping an invalid snapshot of partition %d at offset %d (further ones with this "
                           "reason are only counted): %s", partition, offset, error)

    def _restore(self, partitions: list[int]) -> list[TopicPartition]:
        """Rebuild the states of ``partitions`` from their newest valid snapshots; return where to resume."""
        s = self.settings
        with watchdog("restore", s.startup_timeout_seconds * 2 + 15):
            committed = {tp.partition: tp.offset for tp in self.consumer.committed(
                [TopicPartition(s.events_topic, p) for p in partitions], timeout=s.startup_timeout_seconds)}
            snapshots = self._snapshots_covering(committed)
        positions = []
        for partition in partitions:
            snapshot = snapshots.get(partition)
            if snapshot is None:
                state, next_offset = self.engine.new_state(partition, horizon_seconds=s.horizon_seconds), 0
            else:
                state = self.engine.restore(snapshot, horizon_seconds=s.horizon_seconds)
                next_offset = snapshot.next_offset
            self.checkpoint.add(state, next_offset)
            positions.append(TopicPartition(s.events_topic, partition, next_offset or OFFSET_BEGINNING))
            logger.info("partition %d restored: resuming at offset %s (group committed %s)",
                        partition, next_offset or "beginning", committed.get(partition))
        return positions

    def _snapshots_covering(self, committed: dict[int, int]) -> dict[int, Snapshot | None]:
        """The newest valid snapshots, waiting briefly for ones that cover the committed offsets.

        Offsets and snapshots commit together, but the transaction markers reach the offsets
        topic and the statistics topic separately; a snapshot older than the committed offset
        means its marker is still on the way (or the newer snapshot was invalid: then input is
        re-read from the older one's ``next_offset``, which keeps the counts exact).
        """
        s = self.settings
        deadline = time.monotonic() + s.startup_timeout_seconds
        while True:
            snapshots = read_latest(self.reader, s.statistics_topic, s.events_topic, list(committed),
                                    on_invalid=self._on_invalid_snapshot)
            behind = {p: (snap.next_offset if snap else -1, committed[p]) for p, snap in snapshots.items()
                      if committed[p] >= 0 and (snap.next_offset if snap else -1) < committed[p]}
            if not behind:
                return snapshots
            if time.monotonic() >= deadline or self.stop.is_set():
                logger.error("snapshots behind the committed offsets (partition: (snapshot, committed)) %s; "
                             "resuming from the snapshots", behind)
                return snapshots
            time.sleep(0.05)

    def _rewind(self, partitions: list[int]) -> None:
        """After an abort: states and positions back to the last committed snapshots."""
        self.checkpoint.remove(partitions)
        for position in self._restore(partitions):
            self.consumer.seek(position)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        logger.info("assigned partitions %s", numbers)
        consumer.incremental_assign(self._restore(numbers))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        logger.info("revoking partitions %s", numbers)
        checkpoint = self.checkpoint
        try:
            if checkpoint.dirty:
                checkpoint.commit()
            else:
                checkpoint.abort()
            checkpoint.remove(numbers)
        except TransactionAborted:
            checkpoint.remove(numbers)
            self._rewind(sorted(checkpoint.states))  # the partitions this process keeps
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        logger.warning("lost partitions %s: aborting the open transaction", numbers)
        checkpoint = self.checkpoint
        checkpoint.remove(numbers)
        if checkpoint.in_transaction:
            checkpoint.abort()
            self._rewind(sorted(checkpoint.states))
        consumer.incremental_unassign(partitions)

