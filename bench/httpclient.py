"""A lean HTTP/1.1 keep-alive client on asyncio streams (the load generator must cost less than
what it measures), and the two load shapes: closed loop at saturation, open loop at a rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class HttpConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class Outcome:
    scheduled_ns: int
    done_ns: int
    status: int
    body: bytes
    context: Any = None

    @property
    def latency_ms(self) -> float:
        return (self.done_ns - self.scheduled_ns) / 1e6


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self, *statuses: int) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in statuses]


# A request maker: given a connection and a sequence number, send one request and return
# (status, body, context); it may send more than one request (a duplicate) and count them.
Send = Callable[[HttpConnection, int], Awaitable[tuple[int, bytes, Any]]]


async def closed_loop(host: str, port: int, send: Send, workers: int, seconds: float) -> Load:
    """`workers` connections each sending back to back for `seconds`: the throughput ceiling."""
    load = Load()
    counter = iter(range(10**9))
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        connection = HttpConnection(host, port)
        try:
            while time.monotonic() < deadline:
                n = next(counter)
                start = time.monotonic_ns()
                try:
                    status, body, context = await send(connection, n)
                except Exception as exc:
                    load.errors.append(f"{type(exc).__name__}: {exc}")
                    connection.close()
                    continue
                load.outcomes.append(Outcome(start, time.monotonic_ns(), status, body, context))
        finally:
            connection.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    load.seconds = time.monotonic() - started
    return load


async def open_loop(
    host: str, port: int, send: Send, rate: float, seconds: float, max_connections: int = 256
) -> Load:
    """Requests started at `rate` per second whatever the answers take; latency counts from the
    scheduled start, so a stalled server is not hidden (no coordinated omission)."""
    load = Load()
    idle: list[HttpConnection] = []
    opened = 0
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * seconds)
    gate = asyncio.Semaphore(max_connections)

    async def one(n: int, scheduled: int) -> None:
        nonlocal opened
        async with gate:
            if idle:
                connection = idle.pop()
            else:
                connection = HttpConnection(host, port)
                opened += 1
            try:
                status, body, context = await send(connection, n)
            except Exception as exc:
                load.errors.append(f"{type(exc).__name__}: {exc}")
                connection.close()
                return
            load.outcomes.append(Outcome(scheduled, time.monotonic_ns(), status, body, context))
            idle.append(connection)

    started = time.monotonic()
    start_ns = time.monotonic_ns()
    for n in range(total):
        due = started + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(n, start_ns + int(n / rate * 1e9)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    load.seconds = time.monotonic() - started
    for connection in idle:
        connection.close()
    return load
