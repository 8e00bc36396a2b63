"""Checkpoint, the transaction cycle, against a spec'd mock of confluent_kafka.Producer (no broker)."""
from __future__ import annotations

import functools
import threading
import time
from unittest.mock import MagicMock

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from eventdash import snapshots
from eventdash.consumer import checkpoint as checkpoint_module
from eventdash.consumer.checkpoint import (
    Checkpoint,
    TransactionAborted,
    is_fatal,
    retry_transaction_op,
    watchdog,
)
from eventdash.events.model import Event
from eventdash.observability.metrics import ConsumerMetrics
from eventdash.stats.partition_state import PartitionStats

T0 = 1_764_380_400_000
WALL_MS = 1_764_380_999_000
METADATA = object()  # what consumer.consumer_group_metadata() returns; passed through untouched
EVENTS, STATISTICS = "events", "event_statistics"


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def kafka_exception(code: int = KafkaError._STATE, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, reason="injected", **flags))


def state_with_events(partition: int, n: int = 3) -> PartitionStats:
    state = PartitionStats(partition)
    for i in range(n):
        kind = ("productview", "addtobasket", "purchase")[i % 3]
        state.apply(Event(f"e{i}", kind, T0 + i * 1000, f"s{i % 2}", "u1", f"p{i}", f"Product {i}", 1999, 2))
    return state


def sample(metrics: ConsumerMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def producer() -> MagicMock:
    return MagicMock(spec_set=Producer)


@pytest.fixture
def make_checkpoint(producer, clock):
    def make(stop: threading.Event | None = None) -> Checkpoint:
        return Checkpoint(producer, events_topic=EVENTS, statistics_topic=STATISTICS, history_topic="event_history",
                          group_metadata=lambda: METADATA, metrics=ConsumerMetrics(),
                          interval_seconds=0.25, heartbeat_seconds=2.0, stop=stop, clock=clock,
                          wall_clock_ms=lambda: WALL_MS)
    return make


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(checkpoint_module, "RETRY_BACKOFF_SECONDS", 0.0)


def published(producer: MagicMock) -> dict[int, tuple[bytes, bytes]]:
    """{partition: (key, value)} of the snapshots produced to the statistics topic."""
    out = {}
    for call in producer.produce.call_args_list:
        topic, value = call.args
        assert topic == STATISTICS
        out[call.kwargs["partition"]] = (call.kwargs["key"], value)
    return out


def sent_offsets(producer: MagicMock) -> list[tuple[str, int, int]]:
    offsets, metadata, _timeout = producer.send_offsets_to_transaction.call_args.args
    assert metadata is METADATA
    return [(tp.topic, tp.partition, tp.offset) for tp in offsets]


def transaction_calls(producer: MagicMock) -> list[str]:
    return [name for name, _, _ in producer.mock_calls
            if name in ("begin_transaction", "produce", "send_offsets_to_transaction", "commit_transaction",
                        "abort_transaction")]


# -- commit --------------------------------------------------------------------------------------

def test_minutes_leaving_the_horizon_go_to_the_history_topic_in_the_snapshot_transaction(make_checkpoint, producer):
    from eventdash import history
    from eventdash.events.model import Event
    cp = make_checkpoint()
    state = PartitionStats(4, horizon_seconds=60)
    t0 = 1_764_380_400_000  # a whole minute
    for i, ts in enumerate((t0, t0 + 30_000, t0 + 61_000, t0 + 125_000)):  # the last ends minute 0's horizon
        state.apply(Event(f"e{i}", "purchase" if i == 1 else "productview", ts, "s", "u", "p-1", "", 100, 1))
    cp.add(state, next_offset=0)
    cp.begin()
    cp.processed(4, 3)
    cp.commit()
    calls = [(c.args[0], c.kwargs["key"], c.args[1]) for c in producer.produce.call_args_list]
    assert [topic for topic, _, _ in calls] == [STATISTICS, "event_history"]
    _, key, value = calls[1]
    assert key == f"{EVENTS}:4:{t0 // 60_000}".encode()
    assert history.decode(key, value, events_topic=EVENTS, partition=4) == history.HistoryRecord(
        4, t0 // 60_000, (1, 0, 0, 1))
    assert transaction_calls(producer) == ["begin_transaction", "produce", "produce",
                                           "send_offsets_to_transaction", "commit_transaction"]
    assert t0 // 60_000 not in snapshots.decode(calls[0][2], partition=4).minute_counts
    producer.produce.reset_mock()
    cp.processed(4, 4)
    cp.commit()
    assert [c.args[0] for c in producer.produce.call_args_list] == [STATISTICS]  # a minute is written once


def test_commit_publishes_one_snapshot_per_dirty_partition_then_offsets_then_commits(make_checkpoint, producer):
    cp = make_checkpoint()
    states = {p: state_with_events(p, n=p + 2) for p in range(3)}
    for state in states.values():
        cp.add(state, next_offset=0)
    cp.begin()
    cp.processed(0, 10)
    cp.processed(2, 19)
    cp.processed(2, 20)

    cp.commit()

    records = published(producer)
    assert sorted(records) == [0, 2]  # partition 1 did not change
    for p, next_offset in [(0, 11), (2, 21)]:
        key, value = records[p]
        assert key == f"{EVENTS}:{p}".encode()
        assert snapshots.key_partition(key, EVENTS) == p
        decoded = snapshots.decode(value, partition=p)
        assert decoded == states[p].to_snapshot(next_offset=next_offset, updated_at_ms=WALL_MS)
        assert decoded.next_offset == next_offset and decoded.updated_at_ms == WALL_MS
    assert sent_offsets(producer) == [(EVENTS, 0, 11), (EVENTS, 2, 21)]
    assert transaction_calls(producer) == ["begin_transaction", "produce", "produce",
                                           "send_offsets_to_transaction", "commit_transaction"]
    producer.abort_transaction.assert_not_called()
    assert not cp.dirty and not cp.in_transaction
    assert cp.committed == 1 and cp.aborted == 0
    assert sample(cp.metrics, "eventdash_consumer_snapshots_published_total") == 2
    assert sample(cp.metrics, "eventdash_consumer_transactions_committed_total") == 1


def test_commit_begins_a_transaction_only_once(make_checkpoint, producer):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.produce("events.dlq", b"bad", key=b"k")  # a dead letter begins the transaction
    cp.processed(0, 0)
    cp.commit()
    assert producer.begin_transaction.call_count == 1
    cp.processed(0, 1)
    cp.commit()  # the next cycle begins a new one
    assert producer.begin_transaction.call_count == 2
    assert producer.commit_transaction.call_count == 2


def test_produce_waits_for_room_in_a_full_local_queue(make_checkpoint, producer):
    cp = make_checkpoint()
    producer.produce.side_effect = [BufferError("queue full"), BufferError("queue full"), None]
    cp.produce("events.dlq", b"v", key=b"k")
    assert producer.produce.call_count == 3
    producer.poll.assert_any_call(0.05)
    producer.poll.assert_called_with(0)
    assert cp.in_transaction


def test_heartbeat_commits_every_assigned_partition_when_nothing_changed(make_checkpoint, producer, clock):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=5)
    cp.add(state_with_events(1), next_offset=7)
    assert not cp.due()
    clock.advance(1.99)
    assert not cp.due()
    clock.advance(0.01)
    assert cp.due()

    cp.commit()

    records = published(producer)
    assert sorted(records) == [0, 1]
    assert snapshots.decode(records[1][1], partition=1).next_offset == 7
    assert sent_offsets(producer) == [(EVENTS, 0, 5), (EVENTS, 1, 7)]
    producer.commit_transaction.assert_called_once()
    assert not cp.due()  # the heartbeat restarts the clock


def test_the_interval_runs_from_commit_start_to_commit_start(make_checkpoint, producer, clock):
    """A slow commit does not stretch the cadence: the next one is due an interval after this one began."""
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 0)
    producer.commit_transaction.side_effect = lambda *args: clock.advance(0.1)  # a commit of 100 ms
    began = clock()
    cp.commit()
    assert cp.last_commit == began
    cp.processed(0, 1)
    clock.advance(0.14)  # 240 ms after the last commit began, 140 ms after it ended
    assert not cp.due()
    clock.advance(0.01)
    assert cp.due()


def test_a_commit_slower_than_the_interval_still_leaves_half_an_interval_for_input(make_checkpoint, producer,
                                                                                   clock):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 0)
    producer.commit_transaction.side_effect = lambda *args: clock.advance(0.5)  # a broker that takes 500 ms
    cp.commit()
    cp.processed(0, 1)
    assert cp.seconds_until_due() == pytest.approx(0.125)
    clock.advance(0.12)
    assert not cp.due()
    clock.advance(0.005)
    assert cp.due()


def test_seconds_until_due_is_what_the_consumer_may_wait_for_input(make_checkpoint, clock):
    cp = make_checkpoint()
    assert cp.seconds_until_due() == 0.25  # no partitions: the interval
    cp.add(state_with_events(0), next_offset=0)
    cp.commit()
    clock.advance(0.1)
    assert cp.seconds_until_due() == pytest.approx(0.25)  # clean: up to an interval (heartbeat 2 s away)
    cp.processed(0, 0)
    assert cp.seconds_until_due() == pytest.approx(0.15)
    clock.advance(0.2)
    assert cp.seconds_until_due() == 0.0  # overdue: never negative
    cp.commit()
    clock.advance(1.9)
    assert cp.seconds_until_due() == pytest.approx(0.1)  # clean, the heartbeat is 0.1 s away


def test_due_after_the_interval_when_dirty(make_checkpoint, clock):
    cp = make_checkpoint()
    assert not cp.due()
    clock.advance(3600)
    assert not cp.due()  # no partitions: nothing to commit, not even a heartbeat
    cp.add(state_with_events(0), next_offset=0)
    cp.commit()
    cp.processed(0, 0)
    clock.advance(0.24)
    assert not cp.due()
    clock.advance(0.01)
    assert cp.due()
    cp.commit()
    assert not cp.due()
    clock.advance(0.3)
    assert not cp.due()  # clean: only the heartbeat (2 s) makes it due
    clock.advance(1.7)
    assert cp.due()


# -- failures --------------------------------------------------------------------------------------

@pytest.mark.parametrize("failing", ["send_offsets_to_transaction", "commit_transaction"])
def test_abortable_error_aborts_and_raises_transaction_aborted(make_checkpoint, producer, clock, failing):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 3)
    last_commit = cp.last_commit
    clock.advance(1)
    getattr(producer, failing).side_effect = kafka_exception(KafkaError._STATE, txn_requires_abort=True)

    with pytest.raises(TransactionAborted):
        cp.commit()

    producer.abort_transaction.assert_called_once()
    if failing == "send_offsets_to_transaction":
        producer.commit_transaction.assert_not_called()
    assert not cp.dirty and not cp.in_transaction
    assert cp.aborted == 1 and cp.committed == 0
    assert cp.last_commit == last_commit
    assert sample(cp.metrics, "eventdash_consumer_transaction_aborts_total") == 1
    assert sample(cp.metrics, "eventdash_consumer_transactions_committed_total") == 0


def test_retriable_error_is_retried_until_success(make_checkpoint, producer, no_backoff):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 0)
    producer.send_offsets_to_transaction.side_effect = [
        kafka_exception(KafkaError._TIMED_OUT, retriable=True), None]
    producer.commit_transaction.side_effect = [
        kafka_exception(KafkaError._TIMED_OUT, retriable=True),
        kafka_exception(KafkaError.COORDINATOR_NOT_AVAILABLE, retriable=True), None]

    cp.commit()

    assert producer.send_offsets_to_transaction.call_count == 2
    assert producer.commit_transaction.call_count == 3
    producer.abort_transaction.assert_not_called()
    assert cp.committed == 1 and not cp.dirty and not cp.in_transaction


def test_retriable_error_past_the_deadline_is_raised_without_abort(make_checkpoint, producer, monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(checkpoint_module, "retry_transaction_op",
                        functools.partial(retry_transaction_op, clock=fake, sleep=fake.sleep))
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 0)
    producer.commit_transaction.side_effect = kafka_exception(KafkaError._TIMED_OUT, retriable=True)
    start = fake.now

    with pytest.raises(KafkaException) as raised:
        cp.commit()

    assert raised.value.args[0].retriable()
    assert fake.now - start <= checkpoint_module.TRANSACTION_DEADLINE_SECONDS
    assert producer.commit_transaction.call_count > 1
    producer.abort_transaction.assert_not_called()
    assert cp.dirty == {0} and cp.in_transaction and cp.committed == 0


@pytest.mark.parametrize("error", [
    KafkaError(KafkaError._FENCED, reason="fenced", fatal=True),
    KafkaError(KafkaError.PRODUCER_FENCED, reason="fenced", fatal=True, txn_requires_abort=True),
    KafkaError(KafkaError._FATAL, reason="fatal event, fatal() false", txn_requires_abort=True),
], ids=["fatal", "fatal-and-abortable", "_FATAL-code"])
def test_fatal_error_propagates_without_abort(make_checkpoint, producer, error):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 0)
    producer.commit_transaction.side_effect = KafkaException(error)

    with pytest.raises(KafkaException) as raised:
        cp.commit()

    assert raised.value.args[0] is error
    assert producer.commit_transaction.call_count == 1  # never retried
    producer.abort_transaction.assert_not_called()
    assert cp.committed == 0 and cp.aborted == 0


def test_is_fatal():
    assert is_fatal(KafkaError(KafkaError._FENCED, fatal=True))
    fatal_event = KafkaError(KafkaError._FATAL)
    assert not fatal_event.fatal()
    assert is_fatal(fatal_event)
    assert not is_fatal(KafkaError(KafkaError._TIMED_OUT, retriable=True))
    assert not is_fatal(KafkaError(KafkaError._STATE, txn_requires_abort=True))


# -- retry_transaction_op ----------------------------------------------------------------------------

def test_retry_passes_the_remaining_time_and_returns_the_result():
    clock = FakeClock()
    timeouts = []

    def operation(timeout):
        timeouts.append(timeout)
        if len(timeouts) < 3:
            raise kafka_exception(KafkaError._TIMED_OUT, retriable=True)
        return "done"

    assert retry_transaction_op(operation, "op", deadline_seconds=10, clock=clock, sleep=clock.sleep) == "done"
    backoff = checkpoint_module.RETRY_BACKOFF_SECONDS
    assert timeouts == [10, 10 - backoff, 10 - 2 * backoff]
    assert clock.sleeps == [backoff, backoff]


def test_retry_gives_up_at_the_deadline():
    clock = FakeClock()
    attempts = []

    def operation(timeout):
        attempts.append(clock.now)
        raise kafka_exception(KafkaError._TIMED_OUT, retriable=True)

    start = clock.now
    with pytest.raises(KafkaException):
        retry_transaction_op(operation, "op", deadline_seconds=5, clock=clock, sleep=clock.sleep)
    backoff = checkpoint_module.RETRY_BACKOFF_SECONDS
    assert len(attempts) == round(5 / backoff)
    assert all(t < start + 5 for t in attempts)
    assert attempts[-1] + backoff >= start + 5


def test_retry_does_not_retry_non_retriable_errors():
    clock = FakeClock()
    operation = MagicMock(side_effect=kafka_exception(KafkaError._STATE, txn_requires_abort=True))
    with pytest.raises(KafkaException):
        retry_transaction_op(operation, "op", clock=clock, sleep=clock.sleep)
    assert operation.call_count == 1 and clock.sleeps == []


def test_retry_stops_retrying_once_stop_is_set():
    clock = FakeClock()
    stop = threading.Event()
    stop.set()
    operation = MagicMock(side_effect=kafka_exception(KafkaError._TIMED_OUT, retriable=True))
    with pytest.raises(KafkaException):
        retry_transaction_op(operation, "op", stop=stop, clock=clock, sleep=clock.sleep)
    assert operation.call_count == 1


def test_watchdog_calls_on_hang_only_for_a_block_that_overruns():
    hung = []
    with watchdog("fast", 5.0, on_hang=hung.append):
        pass
    with watchdog("slow", 0.05, on_hang=hung.append):
        deadline = time.monotonic() + 2
        while not hung and time.monotonic() < deadline:
            time.sleep(0.01)
    assert hung == ["slow"]


# -- partitions, abort, close ----------------------------------------------------------------------

def test_remove_drops_state_offsets_and_dirty(make_checkpoint, producer, clock):
    cp = make_checkpoint()
    for p in range(3):
        cp.add(state_with_events(p), next_offset=p * 10)
    assert sample(cp.metrics, "eventdash_consumer_assigned_partitions") == 3
    cp.processed(1, 14)
    cp.processed(2, 25)

    cp.remove([1, 2, 7])  # 7 was never assigned: ignored

    assert set(cp.states) == {0} and set(cp.next_offsets) == {0} and not cp.dirty
    assert sample(cp.metrics, "eventdash_consumer_assigned_partitions") == 1
    clock.advance(2)
    assert cp.due()  # heartbeat of the remaining partition
    cp.commit()
    assert sorted(published(producer)) == [0]
    assert sent_offsets(producer) == [(EVENTS, 0, 0)]


def test_abort_without_a_transaction_calls_nothing(make_checkpoint, producer):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.processed(0, 0)
    cp.abort()
    producer.abort_transaction.assert_not_called()
    assert not cp.dirty and cp.aborted == 0


def test_abort_retries_a_retriable_error(make_checkpoint, producer, no_backoff):
    cp = make_checkpoint()
    cp.begin()
    producer.abort_transaction.side_effect = [kafka_exception(KafkaError._TIMED_OUT, retriable=True), None]
    cp.abort()
    assert producer.abort_transaction.call_count == 2
    assert not cp.in_transaction and cp.aborted == 1


def test_close_commits_when_dirty(make_checkpoint, producer):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.begin()
    cp.processed(0, 8)
    cp.close()
    producer.commit_transaction.assert_called_once()
    producer.abort_transaction.assert_not_called()
    assert sent_offsets(producer) == [(EVENTS, 0, 9)]


def test_close_aborts_an_open_transaction_with_nothing_to_commit(make_checkpoint, producer):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.produce("events.dlq", b"v")  # opens a transaction; nothing processed yet
    cp.close()
    producer.abort_transaction.assert_called_once()
    producer.commit_transaction.assert_not_called()
    producer.send_offsets_to_transaction.assert_not_called()


def test_close_without_a_transaction_does_nothing(make_checkpoint, producer):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.close()
    assert transaction_calls(producer) == []


@pytest.mark.parametrize("error", [
    KafkaError(KafkaError._STATE, txn_requires_abort=True),
    KafkaError(KafkaError._FENCED, fatal=True),
    KafkaError(KafkaError._FATAL),
    KafkaError(KafkaError._INVALID_ARG),
], ids=["abortable", "fatal", "_FATAL", "other"])
def test_close_never_raises(make_checkpoint, producer, error):
    cp = make_checkpoint()
    cp.add(state_with_events(0), next_offset=0)
    cp.begin()
    cp.processed(0, 0)
    producer.commit_transaction.side_effect = KafkaException(error)
    producer.abort_transaction.side_effect = KafkaException(error)
    cp.close()  # the commit fails, and so does the abort of the abortable one: logged, not raised

    cp2 = make_checkpoint()
    cp2.begin()
    cp2.close()  # the abort of an empty transaction fails


def test_a_snapshot_over_budget_is_published_without_product_detail(make_checkpoint, producer):
    cp = make_checkpoint()
    state = state_with_events(0, n=6)
    # far more names than the bounds allow (only a broken limit could do this): over the budget
    state.product_names = {f"{i:064d}": "\U0001F600" * 64 for i in range(3000)}
    with pytest.raises(snapshots.SnapshotTooLarge):
        snapshots.encode(state.to_snapshot(next_offset=1, updated_at_ms=WALL_MS))
    cp.add(state, next_offset=0)
    cp.processed(0, 0)

    cp.commit()

    decoded = snapshots.decode(published(producer)[0][1], partition=0)
    assert decoded.product_names == {}
    assert all(not m.views and not m.purchases for m in decoded.minutes.values())
    assert decoded.totals["productview"].count == 2  # the counts themselves are kept
    assert cp.committed == 1
