"""A real single-node Apache Kafka 3.9 (ZooKeeper mode) run from its Maven Central jars.

``LocalKafka(work_dir).start()`` fetches the jars once (``mvn dependency:copy-dependencies``
into ``.cache/kafka-<version>/libs``), starts ZooKeeper and one broker on loopback with their
data under ``work_dir``, and returns when the broker answers a metadata request over the Kafka
protocol. ``stop()`` stops both and leaves no java process behind.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import processes
from .readiness import free_port, wait_until, zookeeper_ephemeral_paths, zookeeper_serving

logger = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.2"
BROKER_ID = 0
# The broker's ZooKeeper session: after a broker is killed, ZooKeeper keeps its registration this
# long (counted while ZooKeeper runs) and a new broker with the same id cannot start before.
ZOOKEEPER_SESSION_MS = 6000
# A registration left by an earlier version of this file (18 s sessions) or an unknown broker.
STALE_REGISTRATION_WAIT_SECONDS = 45
ROOT = Path(__file__).resolve().parent.parent
POM = Path(__file__).resolve().parent / "pom.xml"
CACHE = Path(os.environ.get("EVENTDASH_KAFKA_CACHE", ROOT / ".cache" / f"kafka-{KAFKA_VERSION}"))

LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log_file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
"""


def fetch_jars() -> Path:
    """Download Kafka and its dependencies from Maven Central once; return the libs dir."""
    libs = CACHE / "libs"
    marker = CACHE / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("local Kafka needs Java 17+ and Maven (mvn) on PATH; install them first")
    logger.info("fetching Apache Kafka %s from Maven Central into %s", KAFKA_VERSION, libs)
    tmp = CACHE / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mvn could not fetch Kafka {KAFKA_VERSION}:\n{result.stdout}{result.stderr}")
    if not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise RuntimeError(f"mvn finished but kafka_2.13-{KAFKA_VERSION}.jar is missing in {tmp}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


@dataclass
class LocalKafka:
    work_dir: Path
    kafka_port: int = 0
    zookeeper_port: int = 0
    heap: str = "512m"
    stop_timeouts: tuple[float, float] = (30.0, 30.0)  # (Kafka, ZooKeeper): SIGTERM, then SIGKILL
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    _logs: dict[str, Path] = field(default_factory=dict, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self, timeout: float = 120.0) -> LocalKafka:
        libs = fetch_jars()
        self.work_dir = Path(self.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.kafka_port = self.kafka_port or free_port()
        self.zookeeper_port = self.zookeeper_port or free_port()
        try:
            self._start_zookeeper(libs, timeout)
            self._start_kafka(libs, timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("Kafka %s ready at %s (ZooKeeper 127.0.0.1:%d, data in %s)",
                    KAFKA_VERSION, self.bootstrap_servers, self.zookeeper_port, self.work_dir)
        return self

    def stop_broker(self) -> None:
        """Stop only the broker (controlled shutdown); ZooKeeper and the data stay."""
        proc = self._procs.pop("kafka", None)
        if proc is not None:
            processes.stop_group(proc, name="kafka", timeout=60)

    def kill(self) -> None:
        """SIGKILL the broker and ZooKeeper at once: a power cut. The next start must cope."""
        for name in ("kafka", "zookeeper"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                processes.kill_group(proc)

    def start_broker(self, timeout: float = 120.0) -> None:
        """Start the broker again on the same port with the same data."""
        self._start_kafka(fetch_jars(), timeout)

    def stop(self) -> None:
        """SIGTERM the broker, then ZooKeeper; SIGKILL either past its timeout (Kafka recovers its log).
        A process stays listed until it is gone, so that :meth:`kill` can still reach it meanwhile."""
        for name, timeout in zip(("kafka", "zookeeper"), self.stop_timeouts, strict=True):
            proc = self._procs.get(name)
            if proc is not None:
                processes.stop_group(proc, name=name, timeout=timeout)
                self._procs.pop(name, None)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self._logs.get(name)
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------

    def _java(self, name: str, libs: Path, main_class: str, properties: str) -> subprocess.Popen:
        conf_dir = self.work_dir / "conf"
        conf_dir.mkdir(exist_ok=True)
        props = conf_dir / f"{name}.properties"
        props.write_text(properties)
        log_file = self.work_dir / f"{name}.log"
        log4j = conf_dir / f"{name}-log4j.properties"
        log4j.write_text(LOG4J.format(log_file=log_file))
        self._logs[name] = log_file
        out = open(self.work_dir / f"{name}.stdout", "ab")
        args = [
            "java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{log4j}",
            f"-Dkafka.logs.dir={self.work_dir}", "-cp", f"{libs}/*", main_class, str(props),
        ]
        proc = processes.spawn(args, stdout=out)
        out.close()
        self._procs[name] = proc
        return proc

    def _exited(self, name: str):
        def check() -> str | None:
            proc = self._procs.get(name)
            if proc is None or proc.poll() is None:
                return None
            log = self.log_tail(name, 200)
            if "NodeExistsException" in log:
                return (f"{name} exited with code {proc.returncode}: ZooKeeper still holds the registration of "
                        f"an earlier broker {BROKER_ID} (one that did not stop cleanly). Start again: the next "
                        f"start waits for that session to expire. Log: {self._logs.get(name)}")
            lines = [line for line in log.splitlines() if not line.startswith(("\tat ", "\t... "))]
            return (f"{name} exited with code {proc.returncode}; last lines of {self._logs.get(name)} "
                    "(Java stack frames left out):\n" + "\n".join(lines[-15:]))
        return check

    def _start_zookeeper(self, libs: Path, timeout: float) -> None:
        data = self.work_dir / "zookeeper"
        data.mkdir(exist_ok=True)
        self._java("zookeeper", libs, "org.apache.zookeeper.server.quorum.QuorumPeerMain", (
            f"dataDir={data}\nclientPort={self.zookeeper_port}\nclientPortAddress=127.0.0.1\n"
            "maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=srvr,ruok,dump\n"
        ))
        wait_until(lambda: zookeeper_serving("127.0.0.1", self.zookeeper_port),
                   what=f"ZooKeeper on 127.0.0.1:{self.zookeeper_port} to answer 'srvr'",
                   timeout=timeout, alive=self._exited("zookeeper"))

    def _wait_for_stale_registration(self) -> None:
        """A broker that was killed (power cut, SIGKILL) stays registered in ZooKeeper until its
        session expires, counted while ZooKeeper runs; a new broker with its id would die with
        ``NodeExistsException``. Wait for the expiry instead."""
        path = f"/brokers/ids/{BROKER_ID}"

        def registered() -> bool:
            return path in zookeeper_ephemeral_paths("127.0.0.1", self.zookeeper_port)

        if not registered():
            return
        logger.info("ZooKeeper still holds the registration of a broker that did not stop cleanly; "
                    "waiting for its session to expire (at most %d s)", STALE_REGISTRATION_WAIT_SECONDS)
        wait_until(lambda: not registered(), what=f"ZooKeeper to expire the stale registration {path}",
                   timeout=STALE_REGISTRATION_WAIT_SECONDS, alive=self._exited("zookeeper"))

    def _start_kafka(self, libs: Path, timeout: float) -> None:
        data = self.work_dir / "kafka-logs"
        data.mkdir(exist_ok=True)
        self._wait_for_stale_registration()
        self._java("kafka", libs, "kafka.Kafka", (
            f"broker.id={BROKER_ID}\n"
            f"zookeeper.session.timeout.ms={ZOOKEEPER_SESSION_MS}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.kafka_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.kafka_port}\n"
            f"zookeeper.connect=127.0.0.1:{self.zookeeper_port}\n"
            f"log.dirs={data}\n"
            "num.partitions=1\nauto.create.topics.enable=false\n"
            "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=4\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "transaction.state.log.num.partitions=4\n"
            "group.initial.rebalance.delay.ms=0\n"
            "log.cleaner.backoff.ms=1000\n"
            "transaction.max.timeout.ms=900000\n"
        ))
        wait_until(self._broker_answers,
                   what=f"Kafka broker at {self.bootstrap_servers} to answer a metadata request",
                   timeout=timeout, alive=self._exited("kafka"))

    def _broker_answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        # A plain TCP connect first keeps librdkafka from logging connection-refused noise.
        socket.create_connection(("127.0.0.1", self.kafka_port), timeout=2).close()

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000})
        metadata = admin.list_topics(timeout=2)
        return bool(metadata.brokers) and metadata.controller_id >= 0
