"""``python -m devstack fetch`` downloads the Kafka jars; ``python -m devstack dev`` runs the stack."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download Apache Kafka's jars from Maven Central")
    dev = sub.add_parser("dev", help="ZooKeeper + Kafka + supervisord in the foreground")
    dev.add_argument("--kafka-port", type=int, default=9092)
    dev.add_argument("--zookeeper-port", type=int, default=2181)
    dev.add_argument("--home", type=Path, help="run from a private folder (tests); default: this project")
    shot = sub.add_parser("screenshot", help="docs/dashboard.png from a stack that has run for minutes")
    shot.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    shot.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devstack %(levelname)s %(message)s")
    if args.command == "fetch":
        from .localkafka import fetch_jars

        print(fetch_jars())
        return 0
    if args.command == "screenshot":
        from .screenshot import take_screenshot

        take_screenshot(args.out.resolve(), args.minutes)
        return 0
    from .dev import run_dev

    return run_dev(kafka_port=args.kafka_port, zookeeper_port=args.zookeeper_port,
                   **({"home": args.home} if args.home else {}))


if __name__ == "__main__":
    sys.exit(main())
