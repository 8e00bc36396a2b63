"""N asyncio Socket.IO clients; writes {"connected": n, "delays": [ms, ...]} (receive − generated_at) to a file.

A file, not stdout: thousands of delays overflow a pipe that the parent reads only at the end.
"""
import asyncio
import json
import sys
import time

import socketio


async def client(url: str, delays: list, deadline: float, connected: list) -> None:
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("stats")
    async def on_stats(payload):
        delays.append(time.time_ns() // 1_000_000 - payload["generated_at_ms"])

    try:
        await sio.connect(url, transports=["websocket"], wait_timeout=30)
    except Exception:
        return
    connected.append(1)
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    await sio.disconnect()


async def main() -> None:
    url, n, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    ramp = min(20.0, 2 + n * 4 / 100)
    deadline = time.monotonic() + ramp + seconds
    delays: list = []
    connected: list = []
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(client(url, delays, deadline, connected)))
        await asyncio.sleep(ramp / max(1, n) * 0.5)
    await asyncio.sleep(max(0.0, deadline - seconds - time.monotonic()))
    delays.clear()  # measure after every client is connected
    await asyncio.gather(*tasks)
    with open(out, "w") as f:
        json.dump({"connected": len(connected), "delays": delays}, f)


asyncio.run(main())
