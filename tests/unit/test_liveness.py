"""GroupWatch: an idle member exits only while the group leaves partitions unconsumed, twice in a row."""
from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from eventdash.consumer.liveness import CHECK_EVERY_SECONDS, GroupWatch, UnconsumedPartitions


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def described(*assignments: list[int]) -> dict:
    future: Future = Future()
    future.set_result(SimpleNamespace(members=[
        SimpleNamespace(assignment=SimpleNamespace(topic_partitions=[TopicPartition("events", p) for p in parts]))
        for parts in assignments]))
    return {"group": future}


def watch(admin, clock) -> GroupWatch:
    return GroupWatch(admin, "group", "events", 6, idle_limit_seconds=15, clock=clock)


def test_idle_beside_a_group_that_covers_every_partition_is_fine():
    admin, clock = MagicMock(spec_set=AdminClient), Clock()
    admin.describe_consumer_groups.side_effect = lambda *a, **k: described([0, 1, 2], [3, 4, 5])
    w = watch(admin, clock)
    for _ in range(10):
        w.check(assigned=0)
        clock.now += CHECK_EVERY_SECONDS
    assert admin.describe_consumer_groups.call_count >= 5


def test_idle_while_partitions_have_no_consumer_exits_after_two_checks():
    admin, clock = MagicMock(spec_set=AdminClient), Clock()
    admin.describe_consumer_groups.side_effect = lambda *a, **k: described([0, 1])
    w = watch(admin, clock)
    w.check(assigned=0)
    clock.now += 14
    w.check(assigned=0)
    assert admin.describe_consumer_groups.call_count == 0  # not before the idle limit
    clock.now += 1
    w.check(assigned=0)  # first sighting: could be a passing rebalance
    clock.now += CHECK_EVERY_SECONDS
    with pytest.raises(UnconsumedPartitions, match=r"partitions \[2, 3, 4, 5\] of events"):
        w.check(assigned=0)


def test_owning_partitions_resets_the_watch_and_an_unreachable_broker_gives_no_verdict():
    admin, clock = MagicMock(spec_set=AdminClient), Clock()
    admin.describe_consumer_groups.side_effect = KafkaException("all brokers down")
    w = watch(admin, clock)
    for _ in range(10):
        w.check(assigned=0)
        clock.now += CHECK_EVERY_SECONDS
    calls = admin.describe_consumer_groups.call_count
    assert calls >= 2  # from the idle limit (15 s) on, every CHECK_EVERY_SECONDS: no verdict, no exit
    w.check(assigned=3)
    admin.describe_consumer_groups.side_effect = lambda *a, **k: described([])
    clock.now += 1
    w.check(assigned=0)
    clock.now += 14.9
    w.check(assigned=0)  # idle again for less than the limit
    assert admin.describe_consumer_groups.call_count == calls
