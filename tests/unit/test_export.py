"""Exports: the numbers the page shows for a window, as JSON and CSV (hand-computed expectations)."""
from __future__ import annotations

import csv
import io

import orjson
import pytest

from eventdash.config import Settings
from eventdash.dashboard.app import create_app
from eventdash.snapshots import MinuteSummary, Snapshot, TypeTotal, minute_counts_of
from eventdash.stats.export import (
    EXPORT_SERIES_SECONDS,
    UnknownWindow,
    complete_through,
    series_csv,
    top_csv,
    window_document,
)
from eventdash.stats.hll import HyperLogLog
from eventdash.stats.view import build_view

NOW_S = 1_764_380_400  # 2025-11-29T01:40:00Z
TYPES = ("productview", "addtobasket", "removefrombasket", "purchase")


def snapshot(partition: int, watermark_s: int, seconds: dict[int, tuple], views: dict[str, int]) -> Snapshot:
    sketches = {stage: HyperLogLog() for stage in ("viewed", "added", "purchased")}
    return Snapshot(partition=partition, next_offset=10, updated_at_ms=NOW_S * 1000,
                    watermark_ms=watermark_s * 1000 + 500, horizon_seconds=900,
                    totals={t: TypeTotal(1, 1, 0) for t in TYPES}, invalid={}, late_total=0,
                    seconds=seconds, minutes={NOW_S // 60: MinuteSummary(sketches, views, {})},
                    product_names={"p-1": "=HYPERLINK(\"http://evil\")", "p-2": "Mug"}, product_categories={},
                    minute_counts=minute_counts_of(seconds), finished_through_minute=-1)


def view(watermark_s: int = NOW_S - 1, seconds: dict | None = None) -> dict:
    seconds = seconds or {NOW_S - 3: (5, 1, 0, 1), NOW_S - 2: (4, 0, 0, 0), NOW_S - 1: (2, 0, 0, 0)}
    snaps = {0: snapshot(0, watermark_s, seconds, {"p-1": 7, "p-2": 3}),
             1: snapshot(1, NOW_S - 600, {}, {})}  # quiet for 10 minutes: it holds nothing back
    return build_view(snaps, now_ms=NOW_S * 1000 + 300, series_seconds=EXPORT_SERIES_SECONDS)


def test_the_series_ends_at_the_last_complete_second():
    # partition 0's event time is in NOW_S - 1: that second may still fill; NOW_S - 2 is complete
    assert complete_through(view(), NOW_S * 1000 + 300) == NOW_S - 2
    assert complete_through(view(watermark_s=NOW_S + 5), NOW_S * 1000 + 300) == NOW_S - 1  # never past now - 1
    rows = list(csv.reader(io.StringIO(series_csv(view(), "1m"))))
    assert rows[0] == ["second", "time_utc", *TYPES]
    assert len(rows) == 1 + 60
    assert rows[-2:] == [[str(NOW_S - 3), "2025-11-29T01:39:57Z", "5", "1", "0", "1"],
                         [str(NOW_S - 2), "2025-11-29T01:39:58Z", "4", "0", "0", "0"]]


def test_a_window_ending_a_minute_back_still_reads_its_oldest_seconds():
    # event time 10 s behind: the 15-minute window reaches 910 s back, past a 900 s series (found in review)
    rows = list(csv.reader(io.StringIO(series_csv(view(NOW_S - 10, {NOW_S - 905: (5, 0, 0, 0)}), "15m"))))
    assert [str(NOW_S - 905), "2025-11-29T01:24:55Z", "5", "0", "0", "0"] in rows and len(rows) == 1 + 900


def test_the_window_document_carries_that_window_and_its_series():
    document = window_document(view(), "1m")
    assert document["events_per_second"] == view()["events_per_second"]  # the rate of now, as the tile
    assert document["window"]["label"] == "1m"
    assert document["window"]["counts"] == view()["windows"]["1m"]["counts"]
    assert document["window"]["top_products"]["views"][0] == {
        "product_id": "p-1", "name": '=HYPERLINK("http://evil")', "count": 7}
    assert len(document["series"]["by_type"]["productview"]) == 60
    assert document["series"]["start_s"] == NOW_S - 2 - 59
    assert sum(document["series"]["by_type"]["productview"]) == 9


def test_top_products_csv_defuses_formulas():
    rows = list(csv.reader(io.StringIO(top_csv(view(), "5m"))))
    assert rows == [["list", "rank", "product_id", "name", "count"],
                    ["views", "1", "p-1", "'=HYPERLINK(\"http://evil\")", "7"], ["views", "2", "p-2", "Mug", "3"]]


def test_an_unknown_window_is_refused():
    with pytest.raises(UnknownWindow, match="window must be one of 1m, 5m, 15m"):
        series_csv(view(), "2h")


def test_the_endpoints_answer_csv_json_and_clear_errors():
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    client = create_app(settings, start_background=False).test_client()
    response = client.get("/api/series.csv?window=15m")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="eventdash-series-15m-')
    assert len(response.text.splitlines()) == 1 + 900
    assert client.get("/api/top.csv").text.splitlines() == ["list,rank,product_id,name,count"]
    assert orjson.loads(client.get("/api/stats?window=1m").data)["window"]["label"] == "1m"
    for path in ("/api/stats?window=2h", "/api/series.csv?window=", "/api/top.csv?window=%3Cx%3E"):
        bad = client.get(path)
        assert bad.status_code == 400 and "window must be one of" in orjson.loads(bad.data)["error"]
