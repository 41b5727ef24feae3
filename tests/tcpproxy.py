"""A TCP proxy on 127.0.0.1 that a test can stall: a real server between the hub and a service
(Redis, PostgreSQL) that stops passing bytes on `stall()` and passes what it held on `resume()`.
What a hung network or a frozen server looks like to the hub, without touching the hub's code."""

from __future__ import annotations

import asyncio
import contextlib

from hub.embedded import free_port


class StallingProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = free_port()
        self.held = 0  # bytes from clients held while stalled
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self.held = 0
        self._flowing.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for source, sink, counted in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(source, sink, counted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, counted: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if not self._flowing.is_set():
                    if counted:
                        self.held += len(data)
                    await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sink.close()
            self._writers.discard(sink)
