"""Open and resolved alerts: one owner of their lifecycle.

An alert opens the first time its rule fires and stays open (one per rule) while it keeps firing;
it resolves after its rule has been quiet for ``resolve_after`` judgements in a row. Every change
is a :class:`Transition` for the notifier. The log keeps the open alerts and the resolved ones of
the last :data:`KEEP_MS` (at most :data:`MAX_RESOLVED`).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import NamedTuple

from .rules import Finding

KEEP_MS = 24 * 3_600_000
MAX_RESOLVED = 500


@dataclass
class Alert:
    id: str  # rule and start, e.g. "purchase_collapse@1764380400000"
    rule: str
    subject: str | None
    summary: str
    started_ms: int  # event time (a minute's start) for event rules, wall time for the others
    resolved_ms: int | None = None
    quiet: int = 0  # judgements in a row without the rule firing

    def public(self) -> dict:
        doc = asdict(self)
        del doc["quiet"]
        doc["active"] = self.resolved_ms is None
        return doc


class Transition(NamedTuple):
    kind: str  # "opened" or "resolved"
    alert: dict


class AlertLog:
    def __init__(self) -> None:
        self.open: dict[str, Alert] = {}
        self.resolved: deque[Alert] = deque(maxlen=MAX_RESOLVED)
        self.version = 0  # bumps on every change a page shows

    def observe(self, at_ms: int, findings: Iterable[Finding], *, rules: Iterable[str],
                resolve_after: int) -> list[Transition]:
        """One judgement at ``at_ms`` of ``rules``: open what fired, resolve what has been quiet long enough."""
        fired = {f.rule: f for f in findings}
        changes: list[Transition] = []
        for rule in rules:
            finding = fired.get(rule)
            alert = self.open.get(rule)
            if finding is not None:
                if alert is None:
                    alert = self.open[rule] = Alert(f"{rule}@{at_ms}", rule, finding.subject, finding.summary, at_ms)
                    changes.append(Transition("opened", alert.public()))
                elif (alert.summary, alert.subject) != (finding.summary, finding.subject):
                    alert.summary = finding.summary
                    alert.subject = finding.subject or alert.subject
                    self.version += 1
                alert.quiet = 0
            elif alert is not None:
                alert.quiet += 1
                if alert.quiet >= resolve_after:
                    alert.resolved_ms = at_ms
                    del self.open[rule]
                    self.resolved.append(alert)
                    changes.append(Transition("resolved", alert.public()))
        if changes:
            self.version += 1
        return changes

    def view(self, now_ms: int) -> dict:
        """The open alerts, and every alert (open or resolved) that started or ended in the last day, newest first."""
        recent = [a for a in self.resolved if (a.resolved_ms or 0) >= now_ms - KEEP_MS]
        alerts = sorted([*self.open.values(), *recent], key=lambda a: (a.started_ms, a.id), reverse=True)
        return {"active": [a.public() for a in sorted(self.open.values(), key=lambda a: a.started_ms)],
                "recent": [a.public() for a in alerts]}
