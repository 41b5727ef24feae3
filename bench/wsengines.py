"""The WebSocket layer alone, candidate against candidate (issue 14, item 5): what a server
process spends to accept a socket (HTTP upgrade, 101, Engine.IO's OPEN packet, its ping timer),
to hold it (RSS), and to write one prebuilt event frame to it.

- `hub`: uvicorn (httptools, uvloop) handing the upgrade to Hub's own endpoint,
  `realtime.lean.SocketProtocol`, the code `hub serve` runs: only the Socket.IO CONNECT and what
  follows it (auth, presence, the log) is left out, by a stand-in Realtime.
- `picows`: picows's server (HTTP upgrade and framing in Cython) with a listener doing the same
  Engine.IO work: the OPEN packet, the ping timer, the same frame bytes written to every socket.

granian is not a candidate at this layer: it serves ASGI only, so its sockets take
python-socketio's path; `BENCH_SERVER=granian` runs the whole hub under it for bench.capacity
and bench.fanout instead.

Each run starts the server in a process of its own, opens N sockets (200 at a time) from this
process, then asks the server for `--frames` writes to every socket and waits until every client
read them all. Server CPU and RSS are read around each phase.

    python -m bench.wsengines [--sockets 10000] [--frames 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

from bench.common import PYTHON, free_port, log, raise_nofile, summarise, write_result

CANDIDATES = ("hub", "picows")
CONCURRENCY = 200
EVENT = '2["tip.received",{"id":1,"seq":1,"type":"tip.received","data":{"amount":50000}}]'
OPENED = {"upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 16384}


# the servers


def serve_hub(port: int) -> None:
    import uvicorn

    from realtime.lean import SocketProtocol, message_frame
    from realtime.server import SocketLimits

    class Standin:
        """What SocketProtocol reads of a Realtime before a CONNECT."""

        lean = True
        limits = SocketLimits()
        ping_interval = 25.0
        ping_timeout = 20.0

        def origin_allowed(self, origin: Any, environ: Any) -> bool:
            return True

        async def socket_gone(self, sid: str) -> None:
            return None

        def spawn(self, work: Any) -> None:
            work.close()

    sockets: list[SocketProtocol] = []

    class Protocol(SocketProtocol):
        __slots__ = ()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sockets.append(self)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        frames = int(scope["query_string"].decode().partition("=")[2] or 0)
        data = message_frame(EVENT)
        for _ in range(frames):
            for socket in sockets:
                socket._write(data)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(sockets)})

    app.hub_realtime = Standin()  # type: ignore[attr-defined]
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws=Protocol,
        log_level="warning",
        ws_ping_interval=None,
        ws_ping_timeout=None,
    )


def serve_picows(port: int) -> None:
    import uvloop
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        WSUpgradeResponse,
        WSUpgradeResponseWithListener,
        ws_create_server,
    )

    from realtime.lean import message_frame

    sockets: list[Socket] = []

    class Socket(WSListener):  # type: ignore[misc]
        __slots__ = ("closed", "ping", "transport")

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            opened = {"sid": secrets.token_urlsafe(15), **OPENED}
            transport.send(WSMsgType.TEXT, ("0" + json.dumps(opened)).encode())
            loop = asyncio.get_running_loop()
            self.ping = loop.call_later(25.0, lambda: None)  # Engine.IO's ping timer
            self.closed = False
            sockets.append(self)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.closed = True
            self.ping.cancel()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def route(request: WSUpgradeRequest) -> Any:
        if request.path.startswith(b"/blast"):
            frames = int(request.path.partition(b"=")[2] or 0)
            data = message_frame(EVENT)
            for _ in range(frames):
                for socket in sockets:
                    if not socket.closed:
                        socket.transport.underlying_transport.write(data)
            answer = WSUpgradeResponse.create_error_response(200, b"%d" % len(sockets))
            return WSUpgradeResponseWithListener(answer, None)
        return Socket()

    async def main() -> None:
        # picows reserves a 16 KiB read buffer per socket by default; Hub's sockets read
        # frames of at most a few hundred bytes, so it gets what they need
        server = await ws_create_server(route, "127.0.0.1", port, read_buffer_init_size=1024)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(main())


# the client


async def open_socket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(
        f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"refused: {head[:80]!r}")
    first = await reader.readexactly(2)  # the OPEN packet's frame: short, unmasked, text
    opened = await reader.readexactly(first[1] & 0x7F)
    if not opened.startswith(b"0{"):
        raise RuntimeError(f"no OPEN packet: {opened[:80]!r}")
    return reader, writer


async def read_frames(reader: asyncio.StreamReader, count: int) -> None:
    frame = len(_frame_bytes())
    await reader.readexactly(frame * count)


def _frame_bytes() -> bytes:
    from realtime.lean import message_frame

    return message_frame(EVENT)


async def http_get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer.decode(errors="replace")


def sample(process: psutil.Process) -> tuple[float, int]:
    times = process.cpu_times()
    return times.user + times.system, process.memory_info().rss


async def one_run(kind: str, sockets: int, frames: int) -> dict[str, Any]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(PYTHON, "-m", "bench.wsengines", "serve", kind, str(port)),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = psutil.Process(process.pid)
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(100):
            try:
                await open_socket(port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        cpu0, rss0 = sample(server)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with gate:
                opened.append(await open_socket(port))

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(sockets)))
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(0.5)
        cpu1, rss1 = sample(server)
        reading = [asyncio.create_task(read_frames(r, frames)) for r, _ in opened]
        await http_get(port, f"/blast?n={frames}")
        await asyncio.gather(*reading)
        cpu2, _ = sample(server)
        return {
            "sockets": sockets,
            "connect_seconds": connect_seconds,
            "cpu_ms_per_connect": (cpu1 - cpu0) * 1000 / sockets,
            "kib_per_socket": (rss1 - rss0) / 1024 / sockets,
            "cpu_us_per_frame": (cpu2 - cpu1) * 1e6 / (sockets * frames),
        }
    finally:
        for _, writer in opened:
            writer.close()
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def main_async(runs: int, sockets: int, frames: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in CANDIDATES:
        measured = []
        for run in range(runs):
            result = await one_run(kind, sockets, frames)
            log(f"wsengines {kind} run {run + 1}: {result}")
            measured.append(result)
        results[kind] = summarise(measured)
    return results


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        {"hub": serve_hub, "picows": serve_picows}[sys.argv[2]](int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    raise_nofile()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = asyncio.run(main_async(args.runs, args.sockets, args.frames))
    write_result(
        "wsengines",
        {"sockets": args.sockets, "frames": args.frames, "runs": args.runs, **results},
    )


if __name__ == "__main__":
    main()
