"""Development stack: a real Apache Kafka + ZooKeeper from Maven Central, run with ``java``.

Used by ``make dev``, the test suite and the benchmarks. Not shipped in the container image:
there Kafka and ZooKeeper run in their own containers (docker-compose.yml).
"""
