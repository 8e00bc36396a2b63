"""Never alive without work: an aggregator with no partitions while its group leaves partitions
unconsumed ends itself, so that supervisord starts a fresh member.

librdkafka can leave a member out of the group after a hung broker or a lost session with no
error delivered to the application. The group's own description (members and their
assignments) says whether that matters: an idle member beside members that cover every
partition (more processes than partitions) is fine; an idle member while partitions belong
to nobody is not.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 3.0
DESCRIBE_TIMEOUT_SECONDS = 5.0


class UnconsumedPartitions(RuntimeError):
    """This process has no partitions while some partitions of the input have no consumer."""


class GroupWatch:
    def __init__(self, admin: AdminClient, group: str, topic: str, partitions: int, *, idle_limit_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self.admin = admin
        self.group = group
        self.topic = topic
        self.partitions = partitions
        self.idle_limit_seconds = idle_limit_seconds
        self._clock = clock
        self._idle_since: float | None = None
        self._next_check = 0.0
        self._suspect: frozenset[int] = frozenset()

    def check(self, *, assigned: int) -> None:
        """Call once per loop turn with the number of partitions this process owns."""
        now = self._clock()
        if assigned:
            self._idle_since, self._suspect = None, frozenset()
            return
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.idle_limit_seconds or now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY_SECONDS
        unconsumed = self.unconsumed()
        if unconsumed is None:
            return  # the group cannot be described now (broker unreachable): no verdict
        confirmed = self._suspect & unconsumed  # seen twice, CHECK_EVERY_SECONDS apart: not a passing rebalance
        self._suspect = unconsumed
        if confirmed:
            raise UnconsumedPartitions(
                f"no partitions assigned here for {now - self._idle_since:.0f} s while partitions "
                f"{sorted(confirmed)} of {self.topic} have no consumer in group {self.group}")

    def unconsumed(self) -> frozenset[int] | None:
        try:
            future = self.admin.describe_consumer_groups([self.group], request_timeout=DESCRIBE_TIMEOUT_SECONDS)
            description = future[self.group].result(timeout=DESCRIBE_TIMEOUT_SECONDS + 1)
        except Exception as exc:  # noqa: BLE001 - KafkaException, a timeout, anything: no verdict
            logger.info("could not describe group %s: %s", self.group, exc)
            return None
        owned = {tp.partition for member in description.members
                 for tp in (member.assignment.topic_partitions if member.assignment else [])
                 if tp.topic == self.topic}
        return frozenset(set(range(self.partitions)) - owned)
