"""N asyncio Socket.IO clients; prints {"connected": n, "delays": [ms, ...]} (receive − generated_at)."""
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
    url, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
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
    print(json.dumps({"connected": len(connected), "delays": delays}), flush=True)


asyncio.run(main())
