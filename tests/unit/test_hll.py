from eventdash.snapshots import decode_sketch, encode_sketch
from eventdash.stats.hll import HyperLogLog, hash64


def sketch(items) -> HyperLogLog:
    h = HyperLogLog()
    for item in items:
        h.add_hash(hash64(item))
    return h


def test_small_counts_are_exact():
    assert sketch([]).estimate() == 0
    assert sketch(["a", "b", "c", "a", "b"]).estimate() == 3


def test_error_within_three_standard_errors_at_large_counts():
    for n in (5_000, 50_000):
        estimate = sketch(f"session-{i}" for i in range(n)).estimate()
        assert abs(estimate - n) / n < 3 * 0.0325, (n, estimate)


def test_merge_is_the_union():
    a, b = sketch(["x", "y"]), sketch(["y", "z"])
    a.merge(b)
    assert a.estimate() == 3


def test_encoding_round_trips():
    original = sketch(f"s{i}" for i in range(100))
    assert decode_sketch(encode_sketch(original)) == original
