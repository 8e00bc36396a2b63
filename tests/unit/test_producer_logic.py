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
