"""Delta updates of the ``stats`` document: the wire format of the Socket.IO event ``stats_delta``.

A page that connects with ``auth = {"delta": true}`` receives one full ``stats`` document with
``seq`` (the base) and then, per broadcast, only what changed since the previous broadcast::

    {"seq": 42, "base": 41,
     "patch": {"totals": {"purchase": 1234},
               "windows": {"5m": {"top_products": {"views": {"3": {"count": 57}}}}},
               "partitions": {"0": [{"partition": 0, "next_offset": 9, ...}]},
               "health": {"lag_error": []}},
     "series": [[1764380400, 31, 9, 1, 4]]}

- ``patch`` mirrors the document. Under a key (or a list index, as a string):
  - an object descends into that member;
  - a list of one element replaces the member with that element (any JSON value);
  - an empty list deletes the member;
  - a scalar (number, string, true, false, null) replaces the member.
  Objects, and lists of equal length, are diffed member by member unless replacing them whole
  is shorter. ``seq`` and ``series`` are not in the patch.
- ``series``: ``[epoch second, productview, addtobasket, removefrombasket, purchase]`` for every
  second of the broadcast's series whose counts differ from the previous broadcast's (a second
  the previous one did not hold counts as zeros).

A client whose ``seq`` is not the delta's ``base`` (it missed one) emits ``resync`` and gets a
full document again. :func:`apply_delta` is the reference for clients (the page's JavaScript
mirrors it; tests and benchmarks use this one).
"""
from __future__ import annotations

from typing import Any

import orjson

_UNCHANGED = object()
_NOT_DIFFED = ("seq", "series")


def diff(old: dict, new: dict) -> dict:
    """The patch turning ``old`` into ``new`` (both documents; ``seq`` and ``series`` left out)."""
    patch = _members({k: v for k, v in old.items() if k not in _NOT_DIFFED},
                     {k: v for k, v in new.items() if k not in _NOT_DIFFED})
    return {} if patch is _UNCHANGED else patch


def _whole(value: Any) -> Any:
    return [value] if type(value) in (dict, list) else value


def _members(old: dict | list, new: dict | list) -> dict | object:
    """Member-by-member patch of two objects, or of two lists of equal length; _UNCHANGED if none."""
    patch: dict = {}
    if type(new) is dict:
        for key in old:
            if key not in new:
                patch[key] = []
        for key, value in new.items():
            entry = _entry(old[key], value) if key in old else _whole(value)
            if entry is not _UNCHANGED:
                patch[key] = entry
    else:
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            entry = _entry(a, b)
            if entry is not _UNCHANGED:
                patch[str(index)] = entry
    return patch or _UNCHANGED


def _entry(old: Any, new: Any) -> Any:
    if type(old) is type(new) and (type(new) is dict or type(new) is list and len(old) == len(new)):
        patch = _members(old, new)
        if patch is _UNCHANGED:
            return _UNCHANGED
        whole = _whole(new)  # a row whose product changed is shorter sent whole
        return whole if len(orjson.dumps(whole)) <= len(orjson.dumps(patch)) else patch
    if type(old) is not type(new) or old != new:  # 1 == 1.0 == True in Python, not on the wire
        return _whole(new)
    return _UNCHANGED


def series_by_second(series: dict | None) -> dict[int, list[int]]:
    """``{epoch second: [counts by type]}`` of a document's ``series``."""
    if not series:
        return {}
    columns = list(series["by_type"].values())
    start = series["start_s"]
    return {start + i: [column[i] for column in columns] for i in range(len(columns[0]) if columns else 0)}


def series_rows(old: dict | None, new: dict) -> list[list[int]]:
    """The seconds of ``new``'s series whose counts differ from ``old``'s (absent = zeros)."""
    before = series_by_second(old)
    rows = []
    for second, counts in series_by_second(new).items():
        if before.get(second, [0] * len(counts)) != counts:
            rows.append([second, *counts])
    return rows


def make_delta(old: dict, new: dict, *, seq: int, base: int) -> dict:
    return {"seq": seq, "base": base, "patch": diff(old, new),
            "series": series_rows(old.get("series"), new["series"]) if "series" in new else []}


def apply_delta(doc: dict, delta: dict) -> dict:
    """``doc`` (a full document, changed in place) after ``delta``; its ``seq`` becomes the delta's.

    Raises ValueError when ``doc`` is not the delta's base: the client must resync.
    """
    if doc.get("seq") != delta["base"]:
        raise ValueError(f"delta {delta['seq']} is based on {delta['base']}, the document is {doc.get('seq')}")
    _apply(doc, delta["patch"])
    doc["seq"] = delta["seq"]
    return doc


def _apply(node: dict | list, patch: dict) -> None:
    for key, entry in patch.items():
        slot = int(key) if type(node) is list else key
        if type(entry) is dict:
            _apply(node[slot], entry)
        elif type(entry) is list:
            if entry:
                node[slot] = entry[0]
            else:
                del node[slot]
        else:
            node[slot] = entry


class DeltaFollower:
    """A client's side of delta updates: the current document and the per-second history.

    Feed it every ``stats`` (:meth:`on_full`) and ``stats_delta`` (:meth:`on_delta`); when
    :meth:`on_delta` returns False, the client must emit ``resync``. ``history`` keeps at most
    ``history_seconds`` seconds before the newest.
    """

    def __init__(self, history_seconds: int = 900):
        self.doc: dict | None = None
        self.history: dict[int, list[int]] = {}
        self.history_seconds = history_seconds

    @property
    def seq(self) -> int | None:
        return None if self.doc is None else self.doc.get("seq")

    def on_full(self, payload: dict) -> None:
        self._merge(series_by_second(payload.get("series")))
        if "seq" in payload:
            self.doc = payload

    def on_delta(self, delta: dict) -> bool:
        if self.doc is None or self.doc.get("seq") != delta["base"]:
            return False
        apply_delta(self.doc, delta)
        self._merge({second: counts for second, *counts in delta["series"]})
        return True

    def _merge(self, rows: dict[int, list[int]]) -> None:
        self.history.update(rows)
        if self.history:
            oldest = max(self.history) - self.history_seconds
            for second in [s for s in self.history if s < oldest]:
                del self.history[second]
