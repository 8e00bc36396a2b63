"""One record never stops the aggregator; a fatal client event always does (no broker needed)."""
from __future__ import annotations

from unittest.mock import MagicMock

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventdash.config import Settings
from eventdash.consumer import aggregator as aggregator_module
from eventdash.consumer.aggregator import Aggregator, FatalClientError
from eventdash.consumer.checkpoint import Checkpoint, TransactionAborted
from eventdash.observability.metrics import ConsumerMetrics
from eventdash.stats.partition_state import PartitionStats

NOW_MS = 1_764_380_400_000


def record(value: bytes | None, offset: int, error: KafkaError | None = None) -> Message:
    return Message(topic="events", partition=0, offset=offset, key=b"k", value=value, headers=None, error=error,
                   timestamp=(1, NOW_MS))


def valid(n: int, **overrides) -> bytes:
    event = {"event_id": f"e{n}", "type": "productview", "ts": NOW_MS, "session_id": "s", "user_id": "u",
             "product_id": "p-1", "price": 1.0, "quantity": 1}
    return orjson.dumps({**event, **overrides})


@pytest.fixture
def aggregator(monkeypatch):
    monkeypatch.setattr(aggregator_module.time, "time_ns", lambda: NOW_MS * 1_000_000)
    agg = Aggregator(Settings.from_env({}))
    producer = MagicMock(spec_set=Producer)
    agg.checkpoint = Checkpoint(producer, events_topic="events", statistics_topic="event_statistics",
                                history_topic="event_history",
                                group_metadata=lambda: None, metrics=ConsumerMetrics(), interval_seconds=0.25,
                                heartbeat_seconds=2.0)
    agg.checkpoint.add(PartitionStats(0), 0)
    return agg


def dead_letters(aggregator) -> list[dict]:
    calls = aggregator.checkpoint.producer.produce.call_args_list
    return [dict(call.kwargs["headers"]) for call in calls if call.args[0] == "events.dlq"]


def test_an_unexpected_exception_on_one_record_is_dead_lettered_and_processing_goes_on(aggregator, monkeypatch):
    real_apply = PartitionStats.apply

    def apply(self, event):
        if event.event_id == "e2":
            raise RecursionError("boom")
        real_apply(self, event)

    monkeypatch.setattr(PartitionStats, "apply", apply)
    aggregator._process([record(valid(n), n) for n in range(5)])
    state = aggregator.checkpoint.states[0]
    assert state.totals["productview"][0] == 4 and state.invalid == {"internal_error": 1}
    [headers] = dead_letters(aggregator)
    assert headers["eventdash.error.reason"] == b"internal_error"
    assert headers["eventdash.error.class"] == b"RecursionError"
    assert headers["eventdash.source.offset"] == b"2"
    assert aggregator.checkpoint.next_offsets[0] == 5 and aggregator.checkpoint.dirty == {0}


def test_a_dead_letter_that_cannot_be_produced_is_not_counted(aggregator):
    aggregator.checkpoint.producer.produce.side_effect = KafkaException(KafkaError(KafkaError._STATE, "fenced"))
    with pytest.raises(TransactionAborted):
        aggregator._process([record(b"not json", 7)])
    assert aggregator.checkpoint.states[0].invalid == {} and aggregator.checkpoint.dirty == set()


@pytest.mark.parametrize("error", [
    KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer with same group.instance.id"),
    KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True),
])
def test_a_fatal_consumer_event_ends_the_process_even_when_fatal_is_false(aggregator, error):
    with pytest.raises(FatalClientError, match="fenced"):
        aggregator._process([record(valid(1), 0), record(None, -1, error=error)])


def test_a_transient_consumer_event_is_logged_and_skipped(aggregator, caplog):
    aggregator._process([record(None, -1, error=KafkaError(KafkaError._TRANSPORT, "broker down")),
                         record(valid(1), 0)])
    assert aggregator.checkpoint.states[0].totals["productview"][0] == 1
    assert "broker down" in caplog.text
