"""One logging set-up for every program: plain lines by default, JSON lines on request."""
from __future__ import annotations

import logging
import re
import sys
import time

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class RepeatFilter(logging.Filter):
    """Let a message through once per ``window`` seconds; say how many like it were held back.

    librdkafka repeats the same connection error every second while a broker is away.
    """

    _DIGITS = re.compile(r"\d+")

    def __init__(self, window: float = 30.0):
        super().__init__()
        self.window = window
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = self._DIGITS.sub("#", record.getMessage())[:160]
        now = time.monotonic()
        last, held = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.window:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.getMessage()} ({held} similar messages held back in the last {self.window:.0f} s)"
            record.args = ()
        self._seen[key] = (now, 0)
        if len(self._seen) > 1000:
            self._seen.clear()
        return True


def configure_logging(level: str = "INFO", fmt: str = "plain", program: str = "eventdash") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = __import__("time").gmtime
    else:
        formatter = logging.Formatter(f"%(asctime)s {program} %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    librdkafka = logging.getLogger("eventdash.kafka.librdkafka")
    librdkafka.filters[:] = [RepeatFilter()]
