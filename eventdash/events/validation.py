"""Turn a record's bytes into an :class:`Event` or say exactly why not.

Pure: no Kafka, no clock (the caller passes ``now_ms``), so it is unit-tested and fuzzed.
"""
from __future__ import annotations

import orjson

from .model import (
    EVENT_TYPES,
    MAX_CATEGORY_CHARS,
    MAX_PRODUCT_ID_CHARS,
    MAX_PRODUCT_NAME_CHARS,
    OTHER_CATEGORY,
    Event,
    is_category,
    is_product_id,
    is_product_name,
)

MAX_TEXT = 200  # event_id, session_id, user_id: hashed or dropped, never stored


class InvalidReason:
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    NEGATIVE_VALUE = "negative_value"
    FUTURE_TIMESTAMP = "future_timestamp"

    ALL = (TOO_LARGE, NOT_JSON, NOT_AN_OBJECT, MISSING_FIELD, WRONG_TYPE, UNKNOWN_TYPE,
           NEGATIVE_VALUE, FUTURE_TIMESTAMP)


class InvalidEvent(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_EVENT_TYPES = frozenset(EVENT_TYPES)
_TEXT_FIELDS = ("event_id", "session_id", "user_id", "product_id")
_REQUIRED = ("event_id", "type", "ts", "session_id", "user_id", "product_id", "price", "quantity")
MAX_TS = 10**14  # year 5138: anything above is not epoch milliseconds
MAX_PRICE = 10**9
MAX_QUANTITY = 10**6


def parse_event(raw: bytes | None, *, now_ms: int, future_tolerance_ms: int = 60_000,
                max_bytes: int = 65_536) -> Event:
    if raw is None:
        raise InvalidEvent(InvalidReason.NOT_JSON, "record has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent(InvalidReason.TOO_LARGE, f"{len(raw)} bytes > {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(InvalidReason.NOT_JSON, str(exc)[:120]) from None
    if type(data) is not dict:
        raise InvalidEvent(InvalidReason.NOT_AN_OBJECT, f"got {type(data).__name__}")
    try:  # the hot path: one lookup per field, the slow diagnosis only when one is missing
        event_id = data["event_id"]
        event_type = data["type"]
        ts = data["ts"]
        session_id = data["session_id"]
        user_id = data["user_id"]
        product_id = data["product_id"]
        price = data["price"]
        quantity = data["quantity"]
    except KeyError:
        missing = [name for name in _REQUIRED if name not in data]
        raise InvalidEvent(InvalidReason.MISSING_FIELD, ", ".join(missing)) from None

    for name, value in (("event_id", event_id), ("session_id", session_id), ("user_id", user_id)):
        if type(value) is not str or not 0 < len(value) <= MAX_TEXT:
            raise InvalidEvent(InvalidReason.WRONG_TYPE, f"{name} must be a non-empty string of at most {MAX_TEXT}")
    # Product ids and names are kept in the statistics: bounded, printable (no control characters).
    if not is_product_id(product_id):
        raise InvalidEvent(InvalidReason.WRONG_TYPE,
                           f"product_id must be printable ASCII of 1 to {MAX_PRODUCT_ID_CHARS} characters")
    if type(event_type) is not str:
        raise InvalidEvent(InvalidReason.WRONG_TYPE, "type must be a string")
    if event_type not in _EVENT_TYPES:
        raise InvalidEvent(InvalidReason.UNKNOWN_TYPE, repr(event_type[:40]))

    if type(ts) is not int or not 0 <= ts < MAX_TS:
        raise InvalidEvent(InvalidReason.WRONG_TYPE, "ts must be epoch milliseconds (integer)")
    if ts > now_ms + future_tolerance_ms:
        raise InvalidEvent(InvalidReason.FUTURE_TIMESTAMP, f"ts is {ts - now_ms} ms in the future")

    price_type = type(price)
    if price_type is not float and price_type is not int or not -MAX_PRICE <= price <= MAX_PRICE:
        raise InvalidEvent(InvalidReason.WRONG_TYPE, "price must be a finite number")
    if type(quantity) is not int or not -MAX_QUANTITY <= quantity <= MAX_QUANTITY:
        raise InvalidEvent(InvalidReason.WRONG_TYPE, "quantity must be an integer")
    if price < 0 or quantity < 0:
        raise InvalidEvent(InvalidReason.NEGATIVE_VALUE, "price and quantity must be >= 0")

    name = data.get("product_name") or ""
    if not is_product_name(name):
        raise InvalidEvent(InvalidReason.WRONG_TYPE,
                           f"product_name must be printable text of at most {MAX_PRODUCT_NAME_CHARS} characters")

    category = data.get("category") or ""
    if not is_category(category):
        raise InvalidEvent(InvalidReason.WRONG_TYPE,
                           f"category must be printable ASCII of at most {MAX_CATEGORY_CHARS} characters, "
                           f"not {OTHER_CATEGORY}")

    return Event(event_id, event_type, ts, session_id, user_id, product_id, name, round(price * 100), quantity,
                 category)


def encode_event(event: dict) -> bytes:
    return orjson.dumps(event)
