"""The webhook notifier: in order, retried with backoff, bounded, never past its give-up age."""
from __future__ import annotations

import orjson

from eventdash.alerts import webhook
from eventdash.alerts.log import Transition
from eventdash.alerts.webhook import WebhookNotifier


class Fake:
    def __init__(self, answers):
        self.answers = list(answers)  # status codes, or an exception to raise, per call
        self.bodies = []
        self.now = 0.0
        self.sleeps = []

    def post(self, url, body):
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, Exception):
            raise answer
        self.bodies.append((answer, orjson.loads(body)))
        return answer

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def transition(kind: str, n: int) -> Transition:
    return Transition(kind, {"id": f"rule@{n}", "rule": "traffic_spike"})


def run_until_idle(notifier: WebhookNotifier, fake: Fake) -> None:
    real_sleep = fake.sleep

    def sleep(seconds):
        real_sleep(seconds)
        if not notifier.pending:
            notifier.stop()
    notifier._sleep = sleep
    notifier.run()


def test_a_receiver_that_is_down_then_up_gets_every_delivery_in_order_with_backoff():
    fake = Fake([ConnectionRefusedError(), ConnectionRefusedError(), 503, 204, 204])
    notifier = WebhookNotifier("http://127.0.0.1:9/hook", fake.sleep, post=fake.post, clock=lambda: fake.now)
    notifier.notify(transition("opened", 1))
    notifier.notify(transition("resolved", 1))
    run_until_idle(notifier, fake)
    delivered = [(status, body["event"]) for status, body in fake.bodies if status == 204]
    assert delivered == [(204, "opened"), (204, "resolved")]
    assert fake.sleeps[:3] == [1.0, 2.0, 4.0]  # backoff while down, reset after a delivery


def test_the_queue_is_bounded_and_old_deliveries_are_given_up():
    outcomes = []
    fake = Fake([])
    notifier = WebhookNotifier("http://x/", fake.sleep, post=fake.post, clock=lambda: fake.now,
                               on_outcome=outcomes.append)
    for n in range(webhook.MAX_PENDING + 5):
        notifier.notify(transition("opened", n))
    assert len(notifier.pending) == webhook.MAX_PENDING and outcomes.count("dropped") == 5
    fake.answers = [OSError("down")] * 10_000
    notifier.pending = type(notifier.pending)(list(notifier.pending)[:1])
    run_until_idle(notifier, fake)
    assert outcomes[-1] == "given_up" and fake.now >= webhook.GIVE_UP_SECONDS
    assert max(fake.sleeps) == webhook.MAX_BACKOFF_SECONDS


def test_an_answer_that_is_not_http_is_retried_and_a_refusal_is_dropped():
    import http.client
    outcomes = []
    fake = Fake([http.client.BadStatusLine("junk"), 404, 204])
    notifier = WebhookNotifier("http://x/", fake.sleep, post=fake.post, clock=lambda: fake.now,
                               on_outcome=outcomes.append)
    notifier.notify(transition("opened", 1))
    notifier.notify(transition("opened", 2))
    run_until_idle(notifier, fake)
    assert outcomes == ["retried", "rejected", "delivered"]  # the 404 does not hold back the next alert
    assert [body["alert"]["id"] for status, body in fake.bodies] == ["rule@1", "rule@2"]


def test_post_json_reports_a_refused_connection_as_an_os_error():
    import pytest
    with pytest.raises(OSError):
        webhook.post_json("http://127.0.0.1:9/hook", b"{}")
