"""Regressions found by an adversarial review: each record, state or call here once stopped the
aggregator or the feed, or made health lie. Each test asserts the correct behaviour."""
from __future__ import annotations

import time
from unittest.mock import MagicMock

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from eventdash import snapshots
from eventdash.consumer.checkpoint import Checkpoint, TransactionAborted
from eventdash.events.model import Event
from eventdash.observability.metrics import ConsumerMetrics
from eventdash.snapshots import HEARTBEAT_SECONDS, MAX_SNAPSHOT_BYTES, decode, encode, encode_sketch
from eventdash.stats.hll import HyperLogLog
from eventdash.stats.partition_state import PartitionStats

T0 = 1_764_380_400_000


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def make_cp(producer, clock):
    return Checkpoint(producer, events_topic="events", statistics_topic="event_statistics",
                      history_topic="event_history",
                      group_metadata=lambda: None, metrics=ConsumerMetrics(), interval_seconds=0.25,
                      heartbeat_seconds=HEARTBEAT_SECONDS, clock=clock, wall_clock_ms=lambda: int(clock.now * 1000))


def test_F1_quiet_partition_never_heartbeats_while_another_is_busy():
    """Dashboard marks a partition 'stuck' when its snapshot is older than stale_after (15 s)."""
    producer, clock = MagicMock(spec_set=Producer), Clock()
    cp = make_cp(producer, clock)
    cp.add(PartitionStats(0), 0)
    cp.add(PartitionStats(1), 0)  # no input on partition 1
    published_at = {0: [], 1: []}
    for i in range(120):  # 30 s of one record every 250 ms on partition 0
        clock.now += 0.25
        cp.begin()
        cp.processed(0, i)
        if cp.due():
            before = producer.produce.call_count
            cp.commit()
            for call in producer.produce.call_args_list[before:]:
                published_at[call.kwargs["partition"]].append(clock.now)
    assert published_at[0]
    assert published_at[1], "partition 1's snapshot was never refreshed in 30 s -> dashboard says 'stuck'"


def _giant_but_valid_snapshot(partition: int = 0, limit: int = 990_000) -> bytes:
    wm = T0
    newest_minute = wm // 60_000
    sketch = encode_sketch(HyperLogLog())
    wide = "\x01" * 64  # 64 characters, 6 bytes each as JSON (\u0001): decode checks characters only
    minutes = []
    for m in range(newest_minute - 15, newest_minute + 1):
        minutes.append({"minute": m, "viewed": sketch, "added": sketch, "purchased": sketch,
                        "views": {f"{m}{i}".ljust(64, "\x01")[:64]: 2**62 for i in range(32)},
                        "purchases": {f"{m}{i}".ljust(64, "\x02")[:64]: 2**62 for i in range(32)}})
    names = {f"{i}".ljust(64, "\x03")[:64]: wide for i in range(17 * 2 * 32)}
    doc = {"v": 2, "partition": partition, "next_offset": 5, "updated_at_ms": wm, "watermark_ms": wm,
           "horizon_seconds": 900, "totals": {}, "invalid": {}, "late_total": 0,
           "seconds": [], "minutes": minutes, "product_names": names}
    raw = orjson.dumps(doc)
    while len(raw) > limit:  # trim names until it is below the reader's 1,000,000-byte limit
        names.popitem()
        raw = orjson.dumps(doc)
    return raw


def test_F2_decode_accepts_a_snapshot_that_encode_then_rejects():
    raw = _giant_but_valid_snapshot()
    assert MAX_SNAPSHOT_BYTES < len(raw) <= snapshots.PRODUCER_MAX_MESSAGE_BYTES
    try:
        snap = decode(raw, partition=0)
    except snapshots.InvalidSnapshot:
        return  # fixed: the reader refuses what the writer could not write
    state = PartitionStats.from_snapshot(snap)
    encode(state.to_snapshot(next_offset=snap.next_offset, updated_at_ms=T0))  # raises SnapshotTooLarge


def test_F3_restored_invalid_reasons_make_every_later_snapshot_undecodable():
    state = PartitionStats(0)
    state.apply(Event("e", "productview", T0, "s", "u", "p", "n", 100, 1))
    raw = orjson.loads(encode(state.to_snapshot(next_offset=1, updated_at_ms=T0)))
    raw["invalid"] = {f"reason{i}": 1 for i in range(snapshots.MAX_INVALID_REASONS)}  # 16: decode accepts
    try:
        restored = PartitionStats.from_snapshot(decode(orjson.dumps(raw), partition=0))
    except snapshots.InvalidSnapshot:
        return  # fixed: unknown reasons are refused

    restored.record_invalid("not_json")  # the aggregator's own reason: now 17
    own = encode(restored.to_snapshot(next_offset=2, updated_at_ms=T0))  # encode accepts it...
    decode(own, partition=0)  # ...decode (dashboard and restore) rejects it: InvalidSnapshot


def test_F5_produce_in_an_abortable_transaction_does_not_become_transaction_aborted():
    """librdkafka: after an abortable error, produce() fails with _STATE (txn_may_enq = 0)."""
    producer, clock = MagicMock(spec_set=Producer), Clock()
    cp = make_cp(producer, clock)
    cp.add(PartitionStats(0), 0)
    cp.begin()
    cp.processed(0, 0)
    producer.produce.side_effect = KafkaException(KafkaError(KafkaError._STATE, reason="abortable state"))
    with pytest.raises(TransactionAborted):  # before the fix: KafkaException escaped, the process exited
        cp.commit()


def test_F6_a_record_with_many_empty_headers_makes_its_dead_letter_unproducible_and_stops_the_aggregator():
    import threading

    from confluent_kafka import Producer as RealProducer

    from eventdash.config import Settings
    from eventdash.consumer.aggregator import Aggregator
    from eventdash.consumer.dead_letters import build_dead_letter
    from tests.unit.test_dead_letters import FakeMessage

    # 150 KB of junk + 430,000 headers with empty name and value: ~1 MB on the wire, within the
    # broker's default 1,048,588 for `events`; build_dead_letter counts their size as 0 bytes.
    msg = FakeMessage(value=b"x" * 150_000, key=b"k", headers=[("", None)] * 430_000)
    msg.error = lambda: None
    letter = build_dead_letter(msg, "not_json", "x")
    print(len(letter.headers), "headers in the dead letter")
    real = RealProducer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 1_000_000,
                         "log_level": 0})
    producer = MagicMock(spec_set=Producer)
    producer.produce.side_effect = real.produce  # librdkafka's own size check, no broker needed
    clock = Clock()
    agg = Aggregator(Settings(), stop=threading.Event())
    agg.checkpoint = make_cp(producer, clock)
    agg.checkpoint.add(PartitionStats(3), 0)
    agg._process([msg])  # raises KafkaException(MSG_SIZE_TOO_LARGE): _loop ends, restart re-reads it


POISON = b'{"v":' + b"[" * 1000 + b"]" * 1000 + b"}"  # 2 KB, valid JSON (orjson allows 1024 levels)


class FakeRecord:
    def __init__(self, value, key=b"events:0", partition=0, offset=7):
        self._v, self._k, self._p, self._o = value, key, partition, offset

    def error(self): return None
    def key(self): return self._k
    def value(self): return self._v
    def partition(self): return self._p
    def offset(self): return self._o
    def topic(self): return "event_statistics"


def test_F7a_decode_raises_recursion_error_not_invalid_snapshot():
    with pytest.raises(snapshots.InvalidSnapshot):
        decode(POISON, partition=0)


def test_F7b_poison_snapshot_kills_the_aggregator_restore():
    from confluent_kafka import TopicPartition

    class Reader:
        def get_watermark_offsets(self, tp, timeout): return (0, 8)
        def assign(self, tps): pass
        def unassign(self): pass
        def consume(self, num_messages, timeout): return [FakeRecord(POISON)]
        def position(self, tps): return [TopicPartition(tp.topic, tp.partition, 8) for tp in tps]

    # expected: the record is reported to on_invalid and skipped (before the fix: RecursionError escaped)
    # _restore -> _on_assign -> consume(): the process exits, and every restart reads it again
    found = snapshots.read_latest(Reader(), "event_statistics", "events", [0], on_invalid=lambda *a: None)
    assert found == {0: None}


def test_F7c_poison_snapshot_ends_the_dashboard_feed_for_good():
    from eventdash.config import Settings
    from eventdash.dashboard import feed as feed_module

    class Consumer:
        def subscribe(self, topics, on_assign): pass
        def consume(self, num_messages, timeout): return [FakeRecord(POISON)]
        def close(self): pass

    f = feed_module.StatisticsFeed(Settings(), sleep=lambda s: f.stop())
    original = feed_module.make_consumer
    feed_module.make_consumer = lambda *a, **k: Consumer()
    try:
        f.run()  # before the fix: RecursionError ended the greenlet for good
    finally:
        feed_module.make_consumer = original


def test_F8_a_planted_lock_directory_or_symlink_is_refused_and_truncates_nothing(tmp_path, monkeypatch):
    """Before the fix, lock_dir() accepted a world-writable <tmp>/eventdash that another user could
    create first, and _try_lock followed a planted symlink, then ftruncate()d what it points at."""
    import os

    from eventdash.config import Settings
    from eventdash.consumer import identity

    monkeypatch.setattr(identity, "LOCK_ROOT", tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data\n")
    shared = tmp_path / f"eventdash-locks-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)  # as another local user could have made it first
    (shared / f"{identity.default_id('0')}.lock").symlink_to(victim)
    with pytest.raises(RuntimeError, match="not a private directory"):
        identity.claim_transactional_id(Settings())
    shared.chmod(0o700)  # private, but with a symlink planted in it
    with pytest.raises(OSError):
        identity.claim_transactional_id(Settings(instance="0"))
    assert victim.read_text() == "precious data\n"


def _live(snaps: dict, lags: dict | None, stale_after: float = 15.0):
    from types import SimpleNamespace

    from eventdash.config import Settings
    from eventdash.dashboard.lag import LagReading
    from eventdash.dashboard.live import LiveStats

    live = LiveStats.__new__(LiveStats)
    live.settings = Settings(stale_after_seconds=stale_after)
    live.metrics = MagicMock()
    live.programs = []
    live._offsets, live._offsets_changed_at = -1, time.monotonic()
    reading = None if lags is None else LagReading(time.monotonic(), lags)
    live.lag_monitor = SimpleNamespace(reading=reading, error=None, partitions=6)
    live.feed = SimpleNamespace(snapshots=snaps, broker_up=True, version=1)
    return live


def test_F9_a_snapshot_of_a_partition_the_events_topic_no_longer_has_is_stuck_forever():
    """The feed accepts events:7 while the lag monitor has not yet reported the partition count
    (or from a topic recreated with fewer partitions) and never drops it once the count is known."""
    from eventdash.config import Settings
    from eventdash.dashboard.feed import StatisticsFeed
    from eventdash.stats.view import build_view

    known = {"n": None}
    feed = StatisticsFeed(Settings(), sleep=lambda s: None, input_partitions=lambda: known["n"])
    now = int(time.time() * 1000)
    old = encode(PartitionStats(7).to_snapshot(next_offset=3, updated_at_ms=now - 3_600_000))
    feed._accept(FakeRecord(old, key=b"events:7", partition=7))
    known["n"] = 6  # the lag monitor's first reading arrives
    for p in range(6):
        feed._accept(FakeRecord(encode(PartitionStats(p).to_snapshot(next_offset=1, updated_at_ms=now)),
                                key=f"events:{p}".encode(), partition=p))
    live = _live(feed.snapshots, {p: 0 for p in range(6)})
    health = live.health(build_view(feed.snapshots, now_ms=now), now)
    assert health["pipeline"] != "stuck", health["stuck_partitions"]


def test_F10_an_abort_that_repeats_forever_never_ends_the_process():
    """e.g. a dead-letter topic that was deleted (auto-create off): each dead letter times out,
    the transaction turns abortable, _loop rewinds and re-reads the same record, forever."""
    import threading

    from eventdash.config import Settings
    from eventdash.consumer.aggregator import Aggregator

    agg = Aggregator(Settings(), stop=threading.Event())
    agg.consumer = MagicMock()
    agg.consumer.consume.return_value = []
    agg.group_watch = MagicMock()
    agg.checkpoint = MagicMock(interval_seconds=0.25, states={0: object()})
    agg.checkpoint.due.return_value = True
    agg.checkpoint.seconds_until_due.return_value = 0.0
    turns = {"n": 0}

    def commit():
        turns["n"] += 1
        if turns["n"] >= 1000:
            agg.stop.set()
        raise TransactionAborted("Broker: Unknown topic or partition")

    agg.checkpoint.commit.side_effect = commit
    agg._rewind = lambda partitions: None
    with pytest.raises(RuntimeError):  # give up after N consecutive aborts (before the fix: looped forever)
        agg._loop()


def test_F11_after_a_failed_close_the_revoke_callback_starts_a_second_30_s_commit():
    """Shutdown: close() gives up after 3 s but leaves the transaction 'open and dirty'; the
    consumer.close() that follows runs _on_revoke, which commits again with the 30 s deadline,
    so the program only ends by the 6 s force-exit (exit 75)."""
    import threading

    from eventdash.config import Settings
    from eventdash.consumer.aggregator import Aggregator

    producer, clock = MagicMock(spec_set=Producer), Clock()
    producer.commit_transaction.side_effect = KafkaException(
        KafkaError(KafkaError._TIMED_OUT, reason="broker down", retriable=True))
    agg = Aggregator(Settings(), stop=threading.Event())
    agg.checkpoint = cp = make_cp(producer, clock)
    cp.add(PartitionStats(0), 0)
    cp.begin()
    cp.processed(0, 0)
    agg.stop.set()
    cp.close()  # logs "could not finish the last transaction at shutdown"
    deadlines = []
    original = cp.commit
    cp.commit = lambda deadline_seconds=30.0: deadlines.append(deadline_seconds) or original(deadline_seconds)
    from confluent_kafka import TopicPartition
    try:
        agg._on_revoke(MagicMock(), [TopicPartition("events", 0)])
    except KafkaException:
        pass
    assert deadlines == [], f"_on_revoke committed again with a {deadlines[0]:.0f} s deadline"
