"""The core aggregation in Quix Streams (run in its own venv by bench/throughput.py).

Count per event type in 1 s tumbling windows, plus running totals per type. Quix keeps state
per message key, so per-type aggregation goes through ``group_by("type")`` (its repartition
topic), which is the idiomatic way. Prints {"first": t, "done": t} (perf_counter seconds).
"""
import json
import sys
import time
import uuid

from quixstreams import Application


def main() -> None:
    bootstrap, topic_name, count, guarantee, state_dir = sys.argv[1:6]
    count = int(count)
    timing = {"first": None, "done": None, "processed": 0}
    app = None

    def on_processed(topic: str, partition: int, offset: int) -> None:
        # Every event passes the repartition topic once: count those to know all are aggregated.
        if timing["first"] is None:
            timing["first"] = time.perf_counter()
        if "repartition" in topic:
            timing["processed"] += 1
            if timing["processed"] >= count:
                timing["done"] = time.perf_counter()
                app.stop()

    app = Application(broker_address=bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", processing_guarantee=guarantee, state_dir=state_dir,
                      loglevel="WARNING", on_message_processed=on_processed)
    events = app.topic(topic_name, value_deserializer="json")
    sdf = app.dataframe(events).group_by("type")

    def total(value, state):
        state.set("total", state.get("total", 0) + 1)

    sdf = sdf.update(total, stateful=True)
    sdf = sdf.tumbling_window(duration_ms=1000).count().final()
    app.run(sdf)
    print(json.dumps({"first": timing["first"], "done": timing["done"]}), flush=True)


if __name__ == "__main__":
    main()
