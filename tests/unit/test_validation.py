from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventdash.events import Event, InvalidEvent, InvalidReason, parse_event

NOW = 1_764_380_000_000


def raw(**overrides) -> bytes:
    event = {"event_id": "e1", "type": "purchase", "ts": NOW - 5, "session_id": "s1", "user_id": "u1",
             "product_id": "p-001", "product_name": "Mug", "price": 19.99, "quantity": 2}
    event.update(overrides)
    return orjson.dumps({k: v for k, v in event.items() if v is not ...})


def reason_of(data: bytes | None, **kwargs) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(data, now_ms=NOW, **kwargs)
    return info.value.reason


def test_valid_event_parses_with_price_in_cents():
    assert parse_event(raw(), now_ms=NOW) == Event("e1", "purchase", NOW - 5, "s1", "u1", "p-001", "Mug", 1999, 2)


def test_product_name_is_optional():
    assert parse_event(raw(product_name=...), now_ms=NOW).product_name == ""


@pytest.mark.parametrize("data, reason", [
    (None, InvalidReason.NOT_JSON),
    (b"\xff\xfe not json", InvalidReason.NOT_JSON),
    (b"[1, 2]", InvalidReason.NOT_AN_OBJECT),
    (b'"text"', InvalidReason.NOT_AN_OBJECT),
    (raw(session_id=...), InvalidReason.MISSING_FIELD),
    (raw(type="checkout"), InvalidReason.UNKNOWN_TYPE),
    (raw(type=3), InvalidReason.WRONG_TYPE),
    (raw(type=["purchase"]), InvalidReason.WRONG_TYPE),  # unhashable: found by the fuzzer
    (b'{"event_id":"e","type":"purchase","ts":1,"session_id":"s","user_id":"u","product_id":"p",'
     b'"price":1e999,"quantity":1}', InvalidReason.NOT_JSON),  # orjson refuses an infinite number
    (raw(ts="yesterday"), InvalidReason.WRONG_TYPE),
    (raw(ts=1.5), InvalidReason.WRONG_TYPE),
    (raw(ts=True), InvalidReason.WRONG_TYPE),
    (raw(quantity=True), InvalidReason.WRONG_TYPE),
    (raw(price="9.99"), InvalidReason.WRONG_TYPE),
    (raw(user_id=""), InvalidReason.WRONG_TYPE),
    (raw(product_name=["x"]), InvalidReason.WRONG_TYPE),
    (raw(price=-1), InvalidReason.NEGATIVE_VALUE),
    (raw(quantity=-2), InvalidReason.NEGATIVE_VALUE),
    (raw(ts=NOW + 60_001), InvalidReason.FUTURE_TIMESTAMP),
])
def test_each_kind_of_bad_input_has_its_reason(data, reason):
    assert reason_of(data) == reason


def test_timestamp_within_the_future_tolerance_is_valid():
    assert parse_event(raw(ts=NOW + 60_000), now_ms=NOW).ts == NOW + 60_000


def test_absurd_size_is_rejected_before_parsing():
    assert reason_of(raw(product_name="x" * 150), max_bytes=100) == InvalidReason.TOO_LARGE


def test_missing_field_detail_names_the_fields():
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw(price=..., quantity=...), now_ms=NOW)
    assert info.value.detail == "price, quantity"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_error(data):
    try:
        event = parse_event(data, now_ms=NOW)
    except InvalidEvent as exc:
        assert exc.reason in InvalidReason.ALL
    else:
        assert isinstance(event, Event)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10)
event_like = st.fixed_dictionaries({}, optional={
    name: json_values | st.just(good) for name, good in [
        ("event_id", "e"), ("type", "productview"), ("ts", NOW), ("session_id", "s"), ("user_id", "u"),
        ("product_id", "p"), ("product_name", "n"), ("price", 1.5), ("quantity", 1)]})


@settings(max_examples=400, deadline=None)
@given(event_like)
def test_arbitrary_json_objects_are_valid_or_rejected_with_a_reason(document):
    try:
        event = parse_event(json.dumps(document).encode(), now_ms=NOW)  # stdlib: any int size
    except InvalidEvent as exc:
        assert exc.reason in InvalidReason.ALL
    else:
        assert event.type == document["type"] and event.quantity >= 0 and event.price_cents >= 0
