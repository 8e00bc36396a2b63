"""eventdash: live statistics of a shop's event stream, from Kafka to the browser."""

__version__ = "0.1.0"
