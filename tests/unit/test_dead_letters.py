"""Dead letters: the rejected record's bytes, bounded, with why and where it came from."""
from __future__ import annotations

import hashlib

import pytest

from eventdash.consumer.dead_letters import (
    INTERNAL_ERROR,
    MAX_DETAIL_BYTES,
    MAX_KEY_BYTES,
    MAX_ORIGINAL_HEADERS_BYTES,
    MAX_VALUE_BYTES,
    build_dead_letter,
)
from eventdash.snapshots import PRODUCER_MAX_MESSAGE_BYTES

TS = 1_764_380_400_123
TIMESTAMP_CREATE_TIME = 1


class FakeMessage:
    """The part of confluent_kafka.Message that build_dead_letter reads."""

    def __init__(self, value: bytes | None = b'{"type": 1}', key: bytes | None = b"s-1",
                 headers: list[tuple[str, bytes | None]] | None = None, headers_error: Exception | None = None,
                 topic: str = "events", partition: int = 3, offset: int = 1234):
        self._value, self._key, self._headers, self._headers_error = value, key, headers, headers_error
        self._topic, self._partition, self._offset = topic, partition, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, TS

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        if self._headers_error is not None:
            raise self._headers_error
        return self._headers


def header_map(letter) -> dict[str, bytes]:
    names = [name for name, _ in letter.headers]
    assert len(names) == len(set(names)), names
    return dict(letter.headers)


def record_size(letter) -> int:
    return (len(letter.key or b"") + len(letter.value or b"")
            + sum(len(name.encode()) + len(value) for name, value in letter.headers))


def test_a_small_record_is_kept_whole_with_reason_and_source():
    msg = FakeMessage(headers=[("trace", b"abc"), ("empty", None)])
    letter = build_dead_letter(msg, "wrong_type", "price must be a finite number")
    assert letter.key == b"s-1" and letter.value == b'{"type": 1}'
    assert letter.headers[:2] == [("trace", b"abc"), ("empty", b"")]  # the originals first, None as b""
    headers = header_map(letter)
    assert headers["eventdash.error.reason"] == b"wrong_type"
    assert headers["eventdash.error.detail"] == b"price must be a finite number"
    assert headers["eventdash.source.topic"] == b"events"
    assert headers["eventdash.source.partition"] == b"3"
    assert headers["eventdash.source.offset"] == b"1234"
    assert headers["eventdash.source.timestamp"] == str(TS).encode()
    for absent in ("eventdash.truncated", "eventdash.error.class", "eventdash.original.value.size",
                   "eventdash.original.key.size"):
        assert absent not in headers


def test_no_value_no_key_no_headers():
    letter = build_dead_letter(FakeMessage(value=None, key=None, headers=None), "not_json", "record has no value")
    assert letter.key is None and letter.value is None
    assert "eventdash.truncated" not in header_map(letter)


def test_a_value_at_the_limit_is_kept_whole():
    value = b"v" * MAX_VALUE_BYTES
    letter = build_dead_letter(FakeMessage(value=value), "too_large", "big")
    assert letter.value == value and "eventdash.truncated" not in header_map(letter)


def test_a_value_over_the_limit_is_cut_with_its_size_and_hash():
    value = bytes(range(256)) * (MAX_VALUE_BYTES // 256 * 3)
    letter = build_dead_letter(FakeMessage(value=value), "too_large", f"{len(value)} bytes")
    assert letter.value == value[:MAX_VALUE_BYTES]
    headers = header_map(letter)
    assert headers["eventdash.original.value.size"] == str(len(value)).encode()
    assert headers["eventdash.original.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["eventdash.truncated"] == b"value"
    assert letter.key == b"s-1"


def test_a_key_over_the_limit_is_cut_with_its_size_and_hash():
    key = b"k" * (MAX_KEY_BYTES + 1)
    letter = build_dead_letter(FakeMessage(key=key), "not_json", "x")
    assert letter.key == key[:MAX_KEY_BYTES]
    headers = header_map(letter)
    assert headers["eventdash.original.key.size"] == str(MAX_KEY_BYTES + 1).encode()
    assert headers["eventdash.original.key.sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert headers["eventdash.truncated"] == b"key"


@pytest.mark.parametrize("error", [SystemError("undecodable header name"), UnicodeDecodeError("utf-8", b"\xff", 0, 1,
                                                                                             "invalid start byte")])
def test_undecodable_headers_are_dropped_and_flagged(error):
    letter = build_dead_letter(FakeMessage(headers_error=error), "not_json", "x")
    headers = header_map(letter)
    assert headers["eventdash.truncated"] == b"headers"
    assert all(name.startswith("eventdash.") for name in headers)
    assert headers["eventdash.error.reason"] == b"not_json"


def test_headers_over_their_limit_are_dropped_and_flagged():
    original = [(f"h{i}", b"x" * 1000) for i in range(MAX_ORIGINAL_HEADERS_BYTES // 1000 + 1)]
    letter = build_dead_letter(FakeMessage(headers=original), "not_json", "x")
    headers = header_map(letter)
    assert headers["eventdash.truncated"] == b"headers"
    assert not any(name.startswith("h") for name in headers)


def test_internal_error_carries_the_exception_class():
    letter = build_dead_letter(FakeMessage(), INTERNAL_ERROR, "KeyError: 'x'", "KeyError")
    headers = header_map(letter)
    assert headers["eventdash.error.reason"] == b"internal_error"
    assert headers["eventdash.error.class"] == b"KeyError"
    assert headers["eventdash.error.detail"] == b"KeyError: 'x'"


def test_detail_and_class_are_bounded():
    letter = build_dead_letter(FakeMessage(), INTERNAL_ERROR, "d" * 100_000, "C" * 100_000)
    headers = header_map(letter)
    assert len(headers["eventdash.error.detail"]) == MAX_DETAIL_BYTES
    assert len(headers["eventdash.error.class"]) <= 200


def test_detail_with_lone_surrogates_does_not_fail():
    letter = build_dead_letter(FakeMessage(), INTERNAL_ERROR, "bad \udcff byte", "UnicodeError")
    assert header_map(letter)["eventdash.error.detail"] == b"bad ? byte"


# The detail (and class) are cut at a byte count without splitting a multi-byte UTF-8 character: an
# internal error's message is arbitrary text, e.g. "€" * 400.
def test_bounded_detail_and_class_stay_valid_utf8():
    letter = build_dead_letter(FakeMessage(), INTERNAL_ERROR, "€" * 400, "Ошибка" * 40)
    headers = header_map(letter)
    assert len(headers["eventdash.error.detail"]) <= MAX_DETAIL_BYTES
    assert len(headers["eventdash.error.class"]) <= 200
    for name, value in letter.headers:
        if name.startswith("eventdash."):
            value.decode("utf-8")  # raises on a split character


def test_the_record_stays_far_below_the_producer_limit_whatever_the_input():
    ten_mb = 10 * 1024 * 1024
    headers = [(f"header-{i}", b"h" * (1024 * 1024)) for i in range(10)]
    msg = FakeMessage(value=b"v" * ten_mb, key=b"k" * ten_mb, headers=headers)
    letter = build_dead_letter(msg, INTERNAL_ERROR, "x" * ten_mb, "E" * ten_mb)
    assert record_size(letter) < PRODUCER_MAX_MESSAGE_BYTES
    assert record_size(letter) < MAX_VALUE_BYTES + MAX_KEY_BYTES + 2000
    assert set(header_map(letter)["eventdash.truncated"].split(b",")) == {b"headers", b"value", b"key"}


def test_the_record_stays_bounded_with_the_largest_headers_kept():
    # just under the limit, counted in characters, of 4-byte header names: the largest set kept
    names = [f"{i:04d}" + "\U0001F600" * 250 for i in range(MAX_ORIGINAL_HEADERS_BYTES // 255)]
    headers = [(name, b"") for name in names]
    assert sum(len(n) for n in names) <= MAX_ORIGINAL_HEADERS_BYTES
    msg = FakeMessage(value=b"v" * (MAX_VALUE_BYTES + 1), key=b"k" * (MAX_KEY_BYTES + 1), headers=headers)
    letter = build_dead_letter(msg, "too_large", "x")
    assert letter.headers[:len(headers)] == headers
    assert record_size(letter) < PRODUCER_MAX_MESSAGE_BYTES
