"""`hub watch`: a Socket.IO client that prints the events one user receives, as they arrive."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import socketio


async def watch(url: str, token: str, label: str = "") -> int:
    client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.5)
    prefix = f"[{label}] " if label else ""
    stop = asyncio.Event()

    def show(line: str) -> None:
        print(f"{prefix}{line}", flush=True)

    @client.event  # type: ignore[untyped-decorator]
    async def connect() -> None:
        show("connected; waiting for events")

    @client.event  # type: ignore[untyped-decorator]
    async def connect_error(data: Any) -> None:
        show(f"connection refused: {json.dumps(data)}")

    @client.on("*")  # type: ignore[untyped-decorator]
    async def any_event(event: str, envelope: Any) -> None:
        show(f"{event} {json.dumps(envelope, ensure_ascii=False)}")

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError as exc:
        print(f"hub watch: cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    await stop.wait()
    await client.disconnect()
    return 0
