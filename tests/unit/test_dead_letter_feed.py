"""The dead-letter panel's data: exact per-minute counts, the newest 20, redacted bounded previews."""
from __future__ import annotations

from confluent_kafka import Message

from eventdash.config import Settings
from eventdash.dashboard.dead_letter_feed import (
    HISTORY_MINUTES,
    MAX_REASONS,
    PREVIEW_CHARS,
    RECENT,
    DeadLetterFeed,
    preview,
    short_hash,
)

NOW_MS = 1_764_380_400_000


def letter(reason: str, at_ms: int, value: bytes | None = b"not json", offset: int = 7) -> Message:
    headers = [("eventdash.error.reason", reason.encode()), ("eventdash.error.detail", b"bad\x07detail"),
               ("eventdash.source.partition", b"3"), ("eventdash.source.offset", str(offset).encode())]
    return Message(topic="events.dlq", partition=0, offset=offset, key=None, value=value, headers=headers,
                   error=None, timestamp=(1, at_ms))


def feed(now_ms: list[int]) -> DeadLetterFeed:
    return DeadLetterFeed(Settings.from_env({}), sleep=lambda s: None, clock_ms=lambda: now_ms[0])


def test_counts_per_reason_per_minute_and_the_newest_first():
    now = [NOW_MS]
    f = feed(now)
    for i in range(3):
        f.accept(letter("not_json", NOW_MS - 120_000 + i, offset=i))
    f.accept(letter("wrong_type", NOW_MS - 1000, offset=3))
    f.accept(letter("not_json", NOW_MS - 1000, offset=4))
    view = f.view()
    assert view["per_minute"] == [
        {"minute_s": (NOW_MS - 120_000) // 60_000 * 60, "by_reason": {"not_json": 3}},
        {"minute_s": (NOW_MS - 1000) // 60_000 * 60, "by_reason": {"not_json": 1, "wrong_type": 1}}]
    assert [r["source_offset"] for r in view["recent"]] == [4, 3, 2, 1, 0]
    newest = view["recent"][0]
    assert newest["reason"] == "not_json" and newest["source_partition"] == 3 and newest["time_ms"] == NOW_MS - 1000
    assert newest["detail"] == "bad\ufffddetail"


def test_everything_kept_is_bounded():
    now = [NOW_MS]
    f = feed(now)
    for i in range(RECENT + 30):
        f.accept(letter("not_json", NOW_MS, offset=i))
    assert len(f.view()["recent"]) == RECENT and f.view()["recent"][0]["source_offset"] == RECENT + 29
    for i in range(MAX_REASONS + 5):
        f.accept(letter(f"reason_{i}", NOW_MS))
    reasons = {r for m in f.view()["per_minute"] for r in m["by_reason"]}
    assert len(reasons) == MAX_REASONS + 1 and "other" in reasons  # the cap, plus "other"
    for minute in range(HISTORY_MINUTES + 30):  # time moves on: old minutes go
        now[0] = NOW_MS + minute * 60_000
        f.accept(letter("not_json", now[0]))
    assert len(f.per_minute) == HISTORY_MINUTES
    f.accept(letter("not_json", now[0] - HISTORY_MINUTES * 60_000))  # older than the hour: not counted
    assert len(f.per_minute) == HISTORY_MINUTES


def test_previews_hash_private_ids_replace_control_characters_and_stay_short():
    raw = (b'{"event_id": "e-1", "session_id" : "s-\\"secret", "user_id":"u-42", "type": "buy\x00\x1b[31m",'
           b' "note": "<img src=x onerror=alert(1)>"}')
    text = preview(raw)
    assert "secret" not in text and "u-42" not in text and "e-1" not in text
    assert short_hash("u-42") in text and short_hash('s-\\"secret') in text
    assert "\x00" not in text and "\x1b" not in text and "\ufffd[31m" in text
    assert "<img src=x onerror=alert(1)>" in text  # shown as text by the page, never as HTML
    assert len(preview(b"x" * 10_000)) == PREVIEW_CHARS and preview(b"x" * 10_000).endswith("…")
    assert preview(None) == "(no value)" and preview(b"\xff\xfe") == "\ufffd\ufffd"
