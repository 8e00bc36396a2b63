"""The core aggregation in Quix Streams (run in its own venv by bench/throughput.py).

Two variants, each run with the aggregator's fetch settings and commit interval (given on the
command line) and either processing guarantee:
- ``group_by``: the idiomatic per-type count. Quix keeps state per message key, so the events
  are re-keyed by type through a repartition topic (an extra produce and consume per event,
  which eventdash does not do), then counted per type in 1 s tumbling windows plus a running
  total per type.
- ``per_partition``: no repartition. State stays with the input's keys (sessions): a running
  count per type under each key, and the same 1 s tumbling window count.
Prints {"first": t, "done": t} (perf_counter seconds): first message to the last one processed.
"""
import json
import sys
import time
import uuid

from quixstreams import Application


def main() -> None:
    bootstrap, topic_name, count, guarantee, state_dir, variant, consumer_settings, commit_interval = sys.argv[1:9]
    count = int(count)
    timing = {"first": None, "done": None, "processed": 0}
    app = None

    def on_processed(topic: str, partition: int, offset: int) -> None:
        if timing["first"] is None:
            timing["first"] = time.perf_counter()
        # group_by: every event passes the repartition topic once; per_partition: the input topic.
        if ("repartition" in topic) == (variant == "group_by"):
            timing["processed"] += 1
            if timing["processed"] >= count:
                timing["done"] = time.perf_counter()
                app.stop()

    app = Application(broker_address=bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", processing_guarantee=guarantee, state_dir=state_dir,
                      loglevel="WARNING", on_message_processed=on_processed,
                      commit_interval=float(commit_interval), consumer_extra_config=json.loads(consumer_settings))
    events = app.topic(topic_name, value_deserializer="json")
    sdf = app.dataframe(events)
    if variant == "group_by":
        sdf = sdf.group_by("type")

    def total(value, state):
        key = f"total:{value['type']}"
        state.set(key, state.get(key, 0) + 1)

    sdf = sdf.update(total, stateful=True)
    sdf = sdf.tumbling_window(duration_ms=1000).count().final()
    app.run(sdf)
    print(json.dumps({"first": timing["first"], "done": timing["done"]}), flush=True)


if __name__ == "__main__":
    main()
