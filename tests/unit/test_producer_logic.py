from collections import Counter, defaultdict
from itertools import islice

from eventdash.events import parse_event
from eventdash.events.validation import encode_event
from eventdash.producer.catalog import CATALOG
from eventdash.producer.rate import RateLimiter
from eventdash.producer.simulator import ShopperSimulator


def take(n, seed=7):
    clock = iter(range(10**6))
    return list(islice(ShopperSimulator(seed=seed, clock_ms=lambda: 1_700_000_000_000 + next(clock)).events(), n))


def test_same_seed_same_stream():
    assert take(500) == take(500)


def test_every_simulated_event_is_valid():
    for event in take(2000):
        parse_event(encode_event(event), now_ms=1_800_000_000_000)


def test_sessions_follow_shopper_logic():
    by_session = defaultdict(list)
    for event in take(5000):
        by_session[event["session_id"]].append(event)
    for events in by_session.values():
        basket = Counter()
        for event in events:
            if event["type"] == "addtobasket":
                basket[event["product_id"]] += 1
            elif event["type"] in ("removefrombasket", "purchase"):
                assert basket[event["product_id"]] > 0, "removed or bought something never added"
                if event["type"] == "removefrombasket":
                    basket[event["product_id"]] -= 1
        assert events[0]["type"] == "productview"
        assert len({e["user_id"] for e in events}) == 1


def test_prices_come_from_the_catalog():
    prices = {p.product_id: p.price for p in CATALOG}
    assert all(e["price"] == prices[e["product_id"]] for e in take(1000))


def test_rate_limiter_spaces_events_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0], burst=1)
    waits = []
    for _ in range(5):
        wait = limiter.delay()
        waits.append(round(wait, 6))
        now[0] += wait
    assert waits == [0.0, 0.1, 0.1, 0.1, 0.1]


def test_rate_zero_means_no_limit():
    limiter = RateLimiter(0, clock=lambda: 0.0)
    assert all(limiter.delay() == 0 for _ in range(100))


def test_pacing_holds_the_rate_when_poll_returns_early():
    """librdkafka's poll(timeout) returns after one delivery report: the rate must not follow it."""
    from eventdash.producer.rate import wait_for_slot

    now = [0.0]

    def early_poll(timeout: float) -> int:  # serves one report after 5 ms, like a busy producer
        now[0] += min(timeout, 0.005)
        return 1

    limiter = RateLimiter(50, clock=lambda: now[0], burst=1)
    for _ in range(101):
        wait_for_slot(limiter, early_poll, clock=lambda: now[0], stopped=lambda: False)
    assert round(now[0], 6) == 2.0  # 100 intervals of 20 ms after the first event


def test_pacing_at_high_rates_waits_in_whole_milliseconds_and_keeps_the_rate():
    """poll() rounds its timeout down to whole ms: 50 µs waits would spin. Waits are >= 1 ms instead."""
    from eventdash.producer.rate import wait_for_slot

    now = [0.0]
    timeouts = []

    def poll(timeout: float) -> int:  # waits as long as asked (no delivery report comes meanwhile)
        timeouts.append(timeout)
        now[0] += timeout
        return 0

    limiter = RateLimiter(20_000, clock=lambda: now[0], burst=1)
    for _ in range(20_001):
        wait_for_slot(limiter, poll, clock=lambda: now[0], stopped=lambda: False)
    assert min(timeouts) >= 0.001
    assert len(timeouts) <= 1_001  # one wait per millisecond, not one per event
    assert 0.99 <= now[0] <= 1.002  # 20,000 events in one second (the first 40 are the bucket's)


def test_pacing_stops_waiting_when_asked():
    from eventdash.producer.rate import wait_for_slot

    now = [0.0]
    limiter = RateLimiter(1, clock=lambda: now[0], burst=1)
    limiter.delay()  # spend the only token

    def poll(timeout: float) -> None:
        now[0] += 0.01

    wait_for_slot(limiter, poll, clock=lambda: now[0], stopped=lambda: now[0] >= 0.05)
    assert round(now[0], 6) == 0.05
