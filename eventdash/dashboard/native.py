"""Which async library runs the dashboard, and real OS threads inside it (eventlet or gevent).

Blocking librdkafka calls would stall the event loop, so they run on a native thread of their
own. Such a thread touches no green primitive: it uses the original ``sleep`` and hands its
results over by plain attribute assignment (atomic under the GIL); it never logs.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable


def detect_async_mode() -> str:
    """``gevent`` or ``eventlet``, whichever has monkey-patched this process (gunicorn's worker), else ``threading``."""
    if "gevent" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            return "gevent"
    if "eventlet" in sys.modules:
        import eventlet.patcher

        if eventlet.patcher.is_monkey_patched("socket"):
            return "eventlet"
    return "threading"


def start_native_thread(target: Callable[[], None]) -> None:
    library = detect_async_mode()
    if library == "gevent":
        from gevent import monkey

        monkey.get_original("_thread", "start_new_thread")(target, ())
    elif library == "eventlet":
        import eventlet.patcher

        eventlet.patcher.original("_thread").start_new_thread(target, ())
    else:
        import _thread

        _thread.start_new_thread(target, ())


def native_sleep() -> Callable[[float], None]:
    library = detect_async_mode()
    if library == "gevent":
        from gevent import monkey

        return monkey.get_original("time", "sleep")
    if library == "eventlet":
        import eventlet.patcher

        return eventlet.patcher.original("time").sleep
    return time.sleep


def run_off_loop() -> Callable:
    """``call(fn, *args)``: ``fn`` on a native thread of the async library's pool, the caller's green
    thread waiting for its result (directly, without an async library)."""
    library = detect_async_mode()
    if library == "eventlet":
        from eventlet import tpool

        return tpool.execute
    if library == "gevent":
        import gevent

        return lambda fn, *args: gevent.get_hub().threadpool.apply(fn, args)
    return lambda fn, *args: fn(*args)
