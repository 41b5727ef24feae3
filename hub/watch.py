"""`hub watch`: a Socket.IO client that prints the events one user receives, as they arrive.

It follows the client rules of docs/events.md: it keeps the last event id, reconnects with it
(so a cut connection recovers what it missed), drops events it has already seen, and stays away
once the platform ended the session (`hub.error` `disconnected` or `banned`, or a refusal as
`user_banned`): it stops, exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import socketio


async def watch(url: str, token: str, label: str = "", last_event_id: int | None = None) -> int:
    client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.5)
    prefix = f"[{label}] " if label else ""
    stop = asyncio.Event()
    ended: list[str] = []  # why the platform ended the session, if it did
    position: dict[str, int | None] = {"last": last_event_id}
    seen: set[int] = set()

    def show(line: str) -> None:
        print(f"{prefix}{line}", flush=True)

    async def auth() -> dict[str, Any]:
        return {"token": token, "last_event_id": position["last"]}

    async def connect() -> None:
        show("connected; waiting for events")

    def end(why: str) -> None:
        ended.append(why)
        stop.set()

    async def connect_error(data: Any) -> None:
        show(f"connection refused: {json.dumps(data)}")
        if isinstance(data, dict) and data.get("type") == "user_banned":
            end(str(data.get("message")))

    async def disconnect(reason: Any = None) -> None:
        show(f"disconnected ({reason}); will reconnect from event {position['last']}")

    async def any_event(event: str, envelope: Any) -> None:
        if event == "hub.error" and isinstance(envelope, dict):
            error = envelope.get("error") or {}
            if error.get("type") in ("disconnected", "banned"):
                show(f"{event} {json.dumps(envelope, ensure_ascii=False)}")
                end(str(error.get("message")))
                return
        if event == "recovered" and isinstance(envelope, dict):
            if position["last"] is None:
                position["last"] = envelope.get("last_event_id")
        elif isinstance(envelope, dict) and isinstance(envelope.get("id"), int):
            if envelope["id"] in seen:
                return
            seen.add(envelope["id"])
            position["last"] = envelope["id"]
        show(f"{event} {json.dumps(envelope, ensure_ascii=False)}")

    client.on("connect", connect)
    client.on("connect_error", connect_error)
    client.on("disconnect", disconnect)
    client.on("*", any_event)
    try:
        await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError as exc:
        print(f"hub watch: cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    except asyncio.CancelledError:
        pass  # python-socketio's own Ctrl-C handler cancels us after disconnecting
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await client.disconnect()  # also ends its reconnection attempts
        show(f"stopped; the last event seen was {position['last']} (--last-event-id to resume)")
    if ended:
        print(f"hub watch: the platform ended this session: {ended[0]}", file=sys.stderr)
        return 1
    return 0
