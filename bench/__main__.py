"""``python -m bench [--quick|--tiny] [--out FILE]``: run every benchmark in one run, write a report.

Each number is the median of several runs with min–max, and every speed is also given as a
ratio to a baseline measured in the same run on the same broker, so results survive a noisy
machine. ``make bench`` writes docs/BENCHMARKS.md; ``make bench QUICK=1`` is a smoke run.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import live, throughput
from .common import ROOT, Runs, fill_topic, machine, new_topic, start_kafka

logger = logging.getLogger("bench")


@dataclass(frozen=True)
class Plan:
    name: str
    produce_events: int
    consume_events: int
    repeats: int
    quix_repeats: int
    freshness_rates: tuple[int, ...]
    freshness_seconds: float
    fanout_clients: tuple[int, ...]
    fanout_seconds: float
    memory_checkpoints: tuple[int, ...]


PLANS = {
    "full": Plan("full", 300_000, 300_000, 3, 3, (5_000, 20_000), 30, (100, 500, 1000), 20, (1_000_000, 10_000_000)),
    "quick": Plan("quick", 50_000, 50_000, 2, 1, (5_000,), 8, (100,), 8, (200_000, 500_000)),
    "tiny": Plan("tiny", 2_000, 2_000, 1, 0, (200,), 3, (5,), 3, (5_000,)),
}


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run, under 3 minutes")
    mode.add_argument("--tiny", action="store_true", help="code paths only (used by the test suite)")
    parser.add_argument("--out", type=Path, help="report file (default docs/BENCHMARKS.md; none for --tiny)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("eventdash", "devstack", "urllib3", "socketio", "engineio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    plan = PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    out = args.out or (None if args.tiny else ROOT / "docs" / "BENCHMARKS.md")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eventdash-bench-") as tmp:
        work = Path(tmp)
        kafka = start_kafka(work / "kafka")
        try:
            report = run(plan, kafka.bootstrap_servers, work)
        finally:
            kafka.stop()
    elapsed = time.monotonic() - started
    text = render(plan, report, elapsed)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        logger.info("wrote %s", out)
    print(text)
    return 0


def run(plan: Plan, bootstrap: str, work: Path) -> dict:
    report: dict = {"machine": machine()}
    logger.info("producer: eventdash vs raw, %d events x %d", plan.produce_events, plan.repeats)
    topic = new_topic(bootstrap, "bench-fill")
    payload = fill_topic(bootstrap, topic, plan.consume_events)
    report["payload_bytes"] = payload
    report["produce"] = {
        "eventdash": Runs([throughput.eventdash_produce(bootstrap, plan.produce_events)[0]
                           for _ in range(plan.repeats)]),
        "raw": Runs([throughput.raw_produce(bootstrap, plan.produce_events, round(payload))
                     for _ in range(plan.repeats)]),
    }
    logger.info("consumer: eventdash vs raw vs Quix Streams, %d events", plan.consume_events)
    consume = {
        "raw": Runs([throughput.raw_consume(bootstrap, topic, plan.consume_events) for _ in range(plan.repeats)]),
        "eventdash": Runs([throughput.eventdash_consume(bootstrap, topic, plan.consume_events)
                           for _ in range(plan.repeats)]),
    }
    if plan.quix_repeats:
        for guarantee in ("exactly-once", "at-least-once"):
            consume[f"quix {guarantee}"] = Runs([
                throughput.quix_consume(bootstrap, topic, plan.consume_events, guarantee, work)
                for _ in range(plan.quix_repeats)])
    report["consume"] = consume
    logger.info("freshness at %s events/s", plan.freshness_rates)
    report["freshness"] = [live.freshness(bootstrap, work, rate, plan.freshness_seconds)
                           for rate in plan.freshness_rates]
    logger.info("fan-out to %s clients", plan.fanout_clients)
    report["fanout"] = [live.fanout(bootstrap, work, n, plan.fanout_seconds) for n in plan.fanout_clients]
    logger.info("memory at %s events", plan.memory_checkpoints)
    report["memory"] = live.memory(bootstrap, work, list(plan.memory_checkpoints))
    return report


def render(plan: Plan, r: dict, elapsed: float) -> str:
    produce, consume = r["produce"], r["consume"]
    produce_ratio = produce["eventdash"].median / produce["raw"].median
    consume_ratio = consume["eventdash"].median / consume["raw"].median
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m bench{'' if plan.name == 'full' else ' --' + plan.name}` in one run "
        f"of {elapsed / 60:.1f} min on {time.strftime('%Y-%m-%d')}. Each cell: median (min–max) of "
        f"{plan.repeats} runs unless said; ratios compare medians measured in this same run.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in r["machine"].items()],
        f"| events | JSON, mean {r['payload_bytes']:.0f} bytes, keyed by session, {6} partitions, lz4 |",
        "",
        f"## 1. Producer ({plan.produce_events:,} events per run)",
        "",
        "| producer | events/s | vs raw |",
        "|---|---|---|",
        f"| eventdash (`run_producer`: simulated sessions, JSON, delivery reports) | {produce['eventdash'].cell()} | "
        f"{produce_ratio:.0%} |",
        f"| raw confluent-kafka loop, constant {r['payload_bytes']:.0f}-byte payload, same settings | "
        f"{produce['raw'].cell()} | 100% |",
        "",
        f"## 2. Consumer / aggregator ({plan.consume_events:,} pre-filled events per run)",
        "",
        "Throughput from the first message to the last one aggregated (and, where it applies, committed).",
        "",
        "| consumer | events/s | vs raw | eventdash vs it |",
        "|---|---|---|---|",
    ]
    for name, runs in consume.items():
        label = {
            "raw": "raw confluent-kafka consume-and-discard (the limit)",
            "eventdash": "eventdash: full statistics, exactly-once transactions every 250 ms",
            "quix exactly-once": f"Quix Streams {throughput.QUIX_VERSION}, exactly-once "
                                 f"({plan.quix_repeats} run{'s' if plan.quix_repeats > 1 else ''})",
            "quix at-least-once": f"Quix Streams {throughput.QUIX_VERSION}, at-least-once "
                                  f"({plan.quix_repeats} run{'s' if plan.quix_repeats > 1 else ''})",
        }[name]
        versus = "—" if name in ("raw", "eventdash") else f"{consume['eventdash'].median / runs.median:.1f}x"
        lines.append(f"| {label} | {runs.cell()} | {runs.median / consume['raw'].median:.1%} | {versus} |")
    lines += [
        "",
        "Quix Streams computes the core aggregation only (count per type in 1 s tumbling windows plus totals "
        "per type), with `group_by(\"type\")` because its state is per message key, and its default commit "
        "interval (5 s). eventdash also keeps per-second buckets, funnel sketches, top products and dead "
        "letters, and commits every 250 ms.",
        "",
        "## 3. Freshness",
        "",
        "Delay from an event's `ts` to the first `stats` message a Socket.IO client receives whose every "
        "partition's watermark is at or past it (so the statistics include the event).",
        "",
        "| input rate (events/s) | achieved | broadcasts | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        *[f"| {f['rate']:,} | {f['achieved_rate']:,.0f} | {f['broadcasts']} | {f['p50']:.0f} | {f['p95']:.0f} | "
          f"{f['p99']:.0f} |" for f in r["freshness"]],
        "",
        "## 4. Fan-out",
        "",
        "One dashboard process (gunicorn, one eventlet worker), default broadcast rate (<= 4/s), clients spread "
        "over 4 asyncio processes on the same 2 cores. Delay = receive time − the document's `generated_at_ms`.",
        "",
        "| clients | connected | messages | p50 ms | p99 ms | dashboard CPU | dashboard RSS |",
        "|---|---|---|---|---|---|---|",
        *[f"| {f['clients']:,} | {f['connected']:,} | {f['messages']:,} | {f['p50']:.0f} | {f['p99']:.0f} | "
          f"{f['cpu_percent']:.0f}% | {f['rss_mb']:.0f} MB |" for f in r["fanout"]],
        "",
        "## 5. Consumer memory",
        "",
        "RSS of `python -m eventdash consume` after consuming N events whose event time advances 1 ms per "
        "event (10M events span 2.8 h, far past the 15 min horizon, so eviction is exercised).",
        "",
        "| events consumed | RSS |",
        "|---|---|",
        *[f"| {n:,} | {mb:.0f} MB |" for n, mb in r["memory"]],
        "",
        "## Against the goals",
        "",
        "| goal | result | |",
        "|---|---|---|",
    ]
    quix = consume.get("quix exactly-once")
    if quix:
        versus_quix = consume["eventdash"].median / quix.median
        lines.append(f"| aggregator >= 5x Quix Streams (exactly-once) | {versus_quix:.1f}x | "
                     f"{verdict(versus_quix >= 5)} |")
    else:
        lines.append("| aggregator >= 5x Quix Streams | not run in this mode | |")
    lines.append(f"| aggregator >= 50% of raw consume | {consume_ratio:.1%} | {verdict(consume_ratio >= 0.5)} |")
    lines.append(f"| producer >= 50% of raw produce | {produce_ratio:.0%} | {verdict(produce_ratio >= 0.5)} |")
    at_20k = [f for f in r["freshness"] if f["rate"] == 20_000]
    if at_20k:
        lines.append(f"| freshness p99 <= 500 ms at 20k events/s | {at_20k[0]['p99']:.0f} ms "
                     f"(achieved {at_20k[0]['achieved_rate']:,.0f}/s) | {verdict(at_20k[0]['p99'] <= 500)} |")
    at_1000 = [f for f in r["fanout"] if f["clients"] == 1000]
    if at_1000:
        lines.append(f"| 1,000 clients at p99 <= 250 ms | {at_1000[0]['p99']:.0f} ms | "
                     f"{verdict(at_1000[0]['p99'] <= 250)} |")
    peak = max(mb for _, mb in r["memory"])
    lines.append(f"| consumer RSS < 150 MB, flat | {', '.join(f'{mb:.0f}' for _, mb in r['memory'])} MB | "
                 f"{verdict(peak < 150)} |")
    lines += ["", "## Where we fall short, and why", ""]
    if consume_ratio < 0.5:
        per_event_us = 1e6 / consume["eventdash"].median
        lines.append(
            f"- **Aggregator at {consume_ratio:.0%} of raw consume (goal: 50%).** The raw loop never "
            "leaves C: it hands librdkafka's buffers back without looking at them. Each eventdash event is parsed "
            "(orjson), validated field by field and folded into the per-second, per-minute, sketch and product "
            f"structures in Python: about {per_event_us:.1f} µs per event in all, measured. The profile "
            "(pyinstrument) showed validation ≈ 45 %, aggregation ≈ 30 %, client calls and commits the rest; the "
            "fixes it pointed to (orjson, batched `consume`, a single-lookup validator, cached session hashes, "
            "`fetch.queue.backoff.ms`, eviction once per event-time second) are in. Half of raw would need about "
            "1 µs per event, which pure Python cannot do. Throughput scales with the consumer group instead: "
            "each added consumer process takes its share of the partitions.")
    if produce_ratio < 0.5:
        lines.append(f"- **Producer at {produce_ratio:.0%} of raw (goal: 50%).** Generating realistic sessions "
                     "and JSON costs about 2 µs per event in Python on top of the client's own work.")
    if at_20k and at_20k[0]["p99"] > 500:
        lines.append("- **Freshness.** A change waits for the next snapshot transaction (<= 250 ms) and then "
                     "for the broadcast throttle (at most 4 per second): the sum of both bounds the tail.")
    if at_1000 and at_1000[0]["p99"] > 250:
        lines.append("- **Fan-out.** One eventlet worker encodes and writes every broadcast to every client.")
    if lines[-1] == "":
        lines.append("Every goal is met in this run.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
