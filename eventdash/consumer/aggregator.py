"""The statistics engine: ``events`` in, per-partition snapshots out, exactly once.

One :class:`PartitionStats` per assigned input partition. Every ``snapshot_interval_ms`` the
changed partitions' snapshots, the dead letters of the period and the consumer's input offsets
are committed in one Kafka transaction (``send_offsets_to_transaction``, KIP-447 fencing by
consumer-group generation). On assignment a partition's state is restored from its latest
committed snapshot and consumption resumes at the snapshot's ``next_offset``, so a crash at
any point loses nothing and counts nothing twice. Several processes in one consumer group split
the partitions; each needs its own stable ``EVENTDASH_TRANSACTIONAL_ID`` so that a restarted
process aborts its predecessor's open transaction at once.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ..config import Settings
from ..events.validation import InvalidEvent, parse_event
from ..kafka.admin import ensure_topics, make_admin, partition_count, wait_for_broker
from ..kafka.clients import make_consumer, make_producer, produce_with_backpressure
from ..observability.metrics import ConsumerMetrics, serve
from ..stats.partition_state import PartitionStats
from .snapshots import read_latest_snapshots, snapshot_key

logger = logging.getLogger(__name__)

BATCH = 1000
TXN_TIMEOUT = 30.0
# librdkafka can block in send_offsets_to_transaction() past its timeout when the group
# coordinator goes away (confluentinc/librdkafka#5456, #5511). Past this limit we exit: the
# supervisor restarts us and init_transactions() aborts the open transaction; nothing is lost.
HUNG_CALL_SECONDS = TXN_TIMEOUT + 15
EXIT_HUNG = 75


class Aggregator:
    def __init__(self, settings: Settings, stop: threading.Event | None = None):
        self.settings = settings
        self.stop = stop or threading.Event()
        self.states: dict[int, PartitionStats] = {}
        self.next_offsets: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.in_transaction = False
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.reader: Consumer | None = None
        self.transactions_committed = 0
        self.transactions_aborted = 0
        self.metrics = ConsumerMetrics()

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        s = self.settings
        admin = make_admin(s)
        wait_for_broker(admin, s)
        ensure_topics(admin, s)
        events_partitions = partition_count(admin, s.events_topic)
        stats_partitions = partition_count(admin, s.statistics_topic)
        if stats_partitions < events_partitions:
            raise RuntimeError(f"{s.statistics_topic} has {stats_partitions} partitions but {s.events_topic} has "
                               f"{events_partitions}: it needs at least one per input partition")
        self.producer = make_producer(s, "consumer", **{
            "transactional.id": s.transactional_id,
            "transaction.timeout.ms": 60_000,
            "linger.ms": 0,
        })
        self.producer.init_transactions(s.startup_timeout_seconds)
        serve(self.metrics.registry, s.consumer_metrics_port, "EVENTDASH_CONSUMER_METRICS_PORT")
        self.reader = make_consumer(s, "snapshot-reader", f"{s.consumer_group}-snapshot-reader",
                                    **{"fetch.wait.max.ms": 10})
        self.consumer = make_consumer(s, "consumer", s.consumer_group, **{
            "partition.assignment.strategy": "cooperative-sticky",
            # Static membership: a restarted process (same id) takes its old place at once
            # instead of waiting for the dead member's session to time out.
            "group.instance.id": s.transactional_id,
            "session.timeout.ms": 10_000,
            "fetch.wait.max.ms": 100,
            "fetch.queue.backoff.ms": 10,  # refill the local queue at once instead of idling up to 1 s
            "queued.max.messages.kbytes": 8192,  # prefetch at most 8 MB (default 64 MB): bounded RSS
        })
        self.consumer.subscribe([s.events_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        logger.info("aggregating %s into %s as %s (group %s)", s.events_topic, s.statistics_topic,
                    s.transactional_id, s.consumer_group)
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        interval = self.settings.snapshot_interval_ms / 1000
        last_commit = time.monotonic()
        while not self.stop.is_set():
            messages = self.consumer.consume(num_messages=BATCH, timeout=min(0.1, interval))
            if messages:
                self._process(messages)
            if self.dirty and time.monotonic() - last_commit >= interval:
                self._commit()
                last_commit = time.monotonic()

    def _shutdown(self) -> None:
        try:
            if self.in_transaction and self.dirty:
                self._commit()
            elif self.in_transaction:
                self.producer.abort_transaction(TXN_TIMEOUT)
        except KafkaException as exc:
            logger.warning("could not finish the last transaction at shutdown: %s", exc)
        finally:
            if self.consumer is not None:
                # A static member does not leave the group on close: a restart with the same id gets
                # its partitions back at once; otherwise they move after session.timeout.ms (10 s).
                self.consumer.close()
            if self.reader is not None:
                self.reader.close()
            if self.producer is not None:
                self.producer.flush(10)
            logger.info("consumer stopped: %d transactions committed, %d aborted",
                        self.transactions_committed, self.transactions_aborted)

    # -- processing ------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        s = self.settings
        if not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True
        now_ms = time.time_ns() // 1_000_000
        states, next_offsets, dirty = self.states, self.next_offsets, self.dirty
        by_type: dict[str, int] = {}
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                logger.warning("consumer error: %s", error)
                continue
            partition = msg.partition()
            state = states.get(partition)
            if state is None:
                continue  # revoked while this batch was in flight
            try:
                event = parse_event(msg.value(), now_ms=now_ms, future_tolerance_ms=s.future_tolerance_ms,
                                    max_bytes=s.max_event_bytes)
            except InvalidEvent as invalid:
                state.record_invalid(invalid.reason)
                self.metrics.invalid.labels(reason=invalid.reason).inc()
                self._dead_letter(msg, invalid)
            else:
                state.apply(event)
                by_type[event.type] = by_type.get(event.type, 0) + 1
            next_offsets[partition] = msg.offset() + 1
            dirty.add(partition)
        for event_type, count in by_type.items():
            self.metrics.consumed.labels(type=event_type).inc(count)

    def _dead_letter(self, msg: Message, invalid: InvalidEvent) -> None:
        headers = list(msg.headers() or [])
        headers += [
            ("eventdash.error.reason", invalid.reason.encode()),
            ("eventdash.error.detail", invalid.detail.encode(errors="replace")[:500]),
            ("eventdash.source.topic", msg.topic().encode()),
            ("eventdash.source.partition", str(msg.partition()).encode()),
            ("eventdash.source.offset", str(msg.offset()).encode()),
        ]
        produce_with_backpressure(self.producer, self.settings.dlq_topic, msg.value(), key=msg.key(),
                                  headers=headers)
        logger.debug("dead-lettered %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), invalid)

    def _commit(self) -> None:
        """Publish changed snapshots and commit them with the input offsets in one transaction."""
        s = self.settings
        now_ms = time.time_ns() // 1_000_000
        offsets = []
        for partition in sorted(self.dirty):
            next_offset = self.next_offsets[partition]
            snapshot = self.states[partition].to_snapshot(next_offset=next_offset, updated_at_ms=now_ms)
            snapshot["lag"] = self._lag(partition, next_offset)
            if snapshot["lag"] is not None:
                self.metrics.lag.labels(partition=str(partition)).set(snapshot["lag"])
            produce_with_backpressure(self.producer, s.statistics_topic, orjson.dumps(snapshot),
                                      key=snapshot_key(s.events_topic, partition), partition=partition)
            offsets.append(TopicPartition(s.events_topic, partition, next_offset))
        try:
            metadata = self.consumer.consumer_group_metadata()
            self._retrying(lambda timeout: self.producer.send_offsets_to_transaction(offsets, metadata, timeout),
                           "send_offsets_to_transaction")
            self._retrying(self.producer.commit_transaction, "commit_transaction")
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal() or not error.txn_requires_abort():
                raise
            logger.warning("transaction aborted (%s); rewinding to the last committed snapshots", error)
            self._abort_and_rewind()
            return
        self.metrics.snapshots.inc(len(offsets))
        self.in_transaction = False
        self.dirty.clear()
        self.transactions_committed += 1
        self.metrics.commits.inc()

    @contextmanager
    def _watchdog(self, name: str):
        def hung() -> None:
            logger.critical("%s did not return within %.0f s (librdkafka#5456); exiting so that the supervisor "
                            "restarts this process: the open transaction will be aborted, nothing is lost",
                            name, HUNG_CALL_SECONDS)
            logging.shutdown()
            os._exit(EXIT_HUNG)

        timer = threading.Timer(HUNG_CALL_SECONDS, hung)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _retrying(self, operation, name: str) -> None:
        """Retry a transactional call while Kafka says the error is retriable (e.g. a broker outage)."""
        while True:
            try:
                with self._watchdog(name):
                    operation(TXN_TIMEOUT)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or self.stop.is_set():
                    raise
                logger.warning("retrying %s: %s", name, exc)

    def _abort_and_rewind(self) -> None:
        self.producer.abort_transaction(TXN_TIMEOUT)
        self.in_transaction = False
        self.dirty.clear()
        self.transactions_aborted += 1
        self.metrics.aborts.inc()
        partitions = sorted(self.states)
        self.states.clear()
        for tp in self._restore(partitions):
            self.consumer.seek(tp)

    def _lag(self, partition: int, next_offset: int) -> int | None:
        try:
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.settings.events_topic, partition), cached=True)
        except KafkaException:
            return None
        return max(0, high - next_offset) if high >= 0 else None

    # -- rebalancing -----------------------------------------------------------------------

    def _restore(self, partitions: list[int]) -> list[TopicPartition]:
        """Rebuild the state of ``partitions`` from their latest committed snapshots."""
        s = self.settings
        committed = {tp.partition: tp.offset for tp in self.consumer.committed(
            [TopicPartition(s.events_topic, p) for p in partitions], timeout=s.startup_timeout_seconds)}
        snapshots = self._snapshots_covering(committed)
        positions = []
        for partition in partitions:
            snapshot = snapshots.get(partition)
            if snapshot is None:
                state = PartitionStats(partition, horizon_seconds=s.horizon_seconds)
                offset = OFFSET_BEGINNING
            else:
                state = PartitionStats.from_snapshot(snapshot, horizon_seconds=s.horizon_seconds)
                offset = snapshot["next_offset"]
                self.next_offsets[partition] = offset
            self.states[partition] = state
            positions.append(TopicPartition(s.events_topic, partition, offset))
            logger.info("partition %d restored: resuming at offset %s (group committed %s)",
                        partition, offset if offset >= 0 else "beginning", committed.get(partition))
        return positions

    def _snapshots_covering(self, committed: dict[int, int]) -> dict[int, dict | None]:
        """The latest snapshots, waiting briefly for ones that cover the committed offsets.

        Offsets and snapshots commit together, but the transaction markers reach the offsets
        topic and the statistics topic separately; a snapshot older than the committed offset
        means its marker is still on the way.
        """
        s = self.settings
        keys = {p: snapshot_key(s.events_topic, p) for p in committed}
        deadline = time.monotonic() + s.startup_timeout_seconds
        while True:
            snapshots = read_latest_snapshots(self.reader, s.statistics_topic, keys)
            behind = {p: (snap["next_offset"] if snap else -1, committed[p]) for p, snap in snapshots.items()
                      if committed[p] >= 0 and (snap["next_offset"] if snap else -1) < committed[p]}
            if not behind:
                return snapshots
            if time.monotonic() >= deadline:
                logger.error("snapshots behind the committed offsets (partition: (snapshot, committed)) %s; "
                             "resuming from the snapshots", behind)
                return snapshots
            time.sleep(0.05)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        logger.info("assigned partitions %s", numbers)
        consumer.incremental_assign(self._restore(numbers))
        self.metrics.assigned.set(len(self.states))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("revoking partitions %s", [tp.partition for tp in partitions])
        if self.in_transaction:
            if self.dirty:
                try:
                    self._commit()
                except KafkaException as exc:
                    logger.warning("could not commit before revoke: %s", exc)
            else:
                self.producer.abort_transaction(TXN_TIMEOUT)
                self.in_transaction = False
        self._forget(partitions)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.warning("lost partitions %s: aborting the open transaction", [tp.partition for tp in partitions])
        self._forget(partitions)
        if self.in_transaction:
            self._abort_and_rewind()
        consumer.incremental_unassign(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.states.pop(tp.partition, None)
            self.next_offsets.pop(tp.partition, None)
            self.dirty.discard(tp.partition)
        self.metrics.assigned.set(len(self.states))
