"""Open and resolved alerts: one owner of their lifecycle.

An alert opens the first time its rule fires (for ``price_drop``, per product: a finding's ``key``)
and stays open while it keeps firing; it resolves after its rule has been quiet for
``resolve_after`` judgements in a row. Every change is a :class:`Transition` for the notifier.
Times: ``started_ms`` and ``ended_ms`` (the end of the last judgement that fired) are the time the
rule judges (event time for the event rules); ``changed_at_ms`` is the clock of the process when it
last opened, changed or resolved. The log keeps the open alerts and the resolved ones whose last
change is within :data:`KEEP_MS` of the clock (at most :data:`MAX_RESOLVED`).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import NamedTuple

from .rules import Finding

KEEP_MS = 24 * 3_600_000
MAX_RESOLVED = 500
PUSHED_RECENT = 20  # recent alerts in the pushed document (marks on the chart); /api/alerts has all


@dataclass
class Alert:
    id: str  # rule, key and start, e.g. "purchase_collapse@1764380400000"
    rule: str
    key: str | None
    subject: str | None
    summary: str
    started_ms: int
    ended_ms: int  # the end of the last judgement that fired
    changed_at_ms: int  # the clock when it last changed
    resolved_ms: int | None = None  # the judgement that resolved it
    quiet: int = 0  # judgements in a row without the rule firing

    def public(self) -> dict:
        doc = asdict(self)
        del doc["quiet"]
        doc["active"] = self.resolved_ms is None
        return doc


class Transition(NamedTuple):
    kind: str  # "opened" or "resolved"
    alert: dict


def _slot(rule: str, key: str | None) -> str:
    return rule if key is None else f"{rule}:{key}"


class AlertLog:
    def __init__(self) -> None:
        self.open: dict[str, Alert] = {}  # slot (rule, or rule:key) -> alert
        self.resolved: deque[Alert] = deque(maxlen=MAX_RESOLVED)
        self.version = 0  # bumps on every change a page shows

    def observe(self, at_ms: int, findings: Iterable[Finding], *, rules: Iterable[str], resolve_after: int,
                now_ms: int, span_ms: int = 60_000) -> list[Transition]:
        """One judgement of ``rules`` covering ``[at_ms, at_ms + span_ms)``: open what fired, resolve
        what has been quiet long enough."""
        judged = set(rules)
        fired = {_slot(f.rule, f.key): f for f in findings if f.rule in judged}
        changes: list[Transition] = []
        for slot, finding in fired.items():
            alert = self.open.get(slot)
            if alert is None:
                alert = self.open[slot] = Alert(
                    f"{slot}@{at_ms}", finding.rule, finding.key, finding.subject, finding.summary, at_ms,
                    at_ms + span_ms, now_ms)
                changes.append(Transition("opened", alert.public()))
            else:
                if (alert.summary, alert.subject) != (finding.summary, finding.subject or alert.subject):
                    alert.summary, alert.subject = finding.summary, finding.subject or alert.subject
                    alert.changed_at_ms = now_ms
                    self.version += 1
                alert.ended_ms = at_ms + span_ms
            alert.quiet = 0
        for slot, alert in list(self.open.items()):
            if alert.rule not in judged or slot in fired:
                continue
            alert.quiet += 1
            if alert.quiet >= resolve_after:
                alert.resolved_ms, alert.changed_at_ms = at_ms, now_ms
                del self.open[slot]
                self.resolved.append(alert)
                changes.append(Transition("resolved", alert.public()))
        if changes:
            self.version += 1
        return changes

    def view(self, now_ms: int, recent_limit: int | None = None) -> dict:
        """The open alerts (oldest first), and every alert open or changed in the last day (newest first)."""
        recent = [a for a in self.resolved if a.changed_at_ms >= now_ms - KEEP_MS]
        alerts = sorted([*self.open.values(), *recent], key=lambda a: (a.started_ms, a.id), reverse=True)
        return {"active": [a.public() for a in sorted(self.open.values(), key=lambda a: (a.started_ms, a.id))],
                "recent": [a.public() for a in alerts[:recent_limit]]}
