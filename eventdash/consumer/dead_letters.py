"""The dead-letter record of a rejected input record: its bytes, bounded, and why it was rejected.

A dead letter keeps the original key, value and headers where they fit, so a fixed record can be
replayed from it. Whatever the input, the record stays far below the producer's
``message.max.bytes``: a value, key or header set over its limit is cut, and the original size
and SHA-256 go into headers instead.

Headers added (values UTF-8):
- ``eventdash.error.reason``: the reason (``not_json``, ..., ``internal_error``);
- ``eventdash.error.detail``: at most 500 bytes of explanation;
- ``eventdash.error.class``: the exception class, for ``internal_error``;
- ``eventdash.source.topic`` / ``.partition`` / ``.offset`` / ``.timestamp``;
- ``eventdash.truncated``: which of ``value``, ``key``, ``headers`` were cut or dropped, with
  ``eventdash.original.value.size`` and ``eventdash.original.value.sha256`` for a cut value
  (likewise ``.key.``); ``headers`` are dropped whole when undecodable or over their limit.
"""
from __future__ import annotations

import hashlib
import logging
from typing import NamedTuple

from confluent_kafka import Message

logger = logging.getLogger(__name__)

MAX_VALUE_BYTES = 256 * 1024
MAX_KEY_BYTES = 4 * 1024
MAX_ORIGINAL_HEADERS_BYTES = 32 * 1024
MAX_ORIGINAL_HEADERS = 256  # by count too: an empty header is 0 bytes here but 2 on the wire
MAX_DETAIL_BYTES = 500
INTERNAL_ERROR = "internal_error"


class DeadLetter(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _utf8_prefix(text: str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``text`` as UTF-8, never ending in a split character."""
    return text.encode(errors="replace")[:limit].decode(errors="ignore").encode()


def _bounded(name: str, data: bytes | None, limit: int, headers: list[tuple[str, bytes]],
             truncated: list[str]) -> bytes | None:
    if data is None or len(data) <= limit:
        return data
    truncated.append(name)
    headers.append((f"eventdash.original.{name}.size", str(len(data)).encode()))
    headers.append((f"eventdash.original.{name}.sha256", hashlib.sha256(data).hexdigest().encode()))
    return data[:limit]


def _original_headers(msg: Message, truncated: list[str]) -> list[tuple[str, bytes]]:
    try:
        original = list(msg.headers() or [])
    except Exception:  # noqa: BLE001 - e.g. SystemError for a header name that is not UTF-8
        truncated.append("headers")
        return []
    size = sum(len(name) + len(value or b"") for name, value in original)
    if len(original) > MAX_ORIGINAL_HEADERS or size > MAX_ORIGINAL_HEADERS_BYTES:
        truncated.append("headers")
        return []
    return [(name, value if value is not None else b"") for name, value in original]


def build_dead_letter(msg: Message, reason: str, detail: str, error_class: str | None = None) -> DeadLetter:
    truncated: list[str] = []
    headers = _original_headers(msg, truncated)
    headers += [
        ("eventdash.error.reason", reason.encode()),
        ("eventdash.error.detail", _utf8_prefix(detail, MAX_DETAIL_BYTES)),
        ("eventdash.source.topic", msg.topic().encode()),
        ("eventdash.source.partition", str(msg.partition()).encode()),
        ("eventdash.source.offset", str(msg.offset()).encode()),
        ("eventdash.source.timestamp", str(msg.timestamp()[1]).encode()),
    ]
    if error_class is not None:
        headers.append(("eventdash.error.class", _utf8_prefix(error_class, 200)))
    value = _bounded("value", msg.value(), MAX_VALUE_BYTES, headers, truncated)
    key = _bounded("key", msg.key(), MAX_KEY_BYTES, headers, truncated)
    if truncated:
        headers.append(("eventdash.truncated", ",".join(truncated).encode()))
    return DeadLetter(key, value, headers)
