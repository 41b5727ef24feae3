"""Reads that arrive together answered by one round trip.

A connect storm (a node restarted, a deploy, a network blip) brings hundreds of sockets at once,
and each connect reads two things another process holds: its presence admission (Redis) and its
log position (PostgreSQL). Asked one by one, each read is a round trip and a driver's full
per-call cost; here they queue while one batch is out, and the next batch takes everything that
waits. There is no waiting window: a lone request finds the batcher idle and goes at once, alone;
under load a batch grows with the load by itself (the same rule as ledger.group_commit, without
a transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

R = TypeVar("R")
A = TypeVar("A")
Run = Callable[[Sequence[R]], Awaitable[Sequence[A]]]


class Coalescer(Generic[R, A]):
    """`submit(request)` answers with `run(batch)[i]` for the batch the request went out in.

    `run` answers every request of a batch, in order, or raises: then every request of that
    batch gets the error (each caller decides what it means for it)."""

    def __init__(self, run: Run[R, A], *, max_batch: int = 256, lanes: int = 1) -> None:
        self._run = run
        self.max_batch = max_batch
        self.lanes = lanes
        self._waiting: list[tuple[R, asyncio.Future[A]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # sent so far, and the requests they held
        self.requests = 0

    async def submit(self, request: R) -> A:
        future: asyncio.Future[A] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._running < self.lanes:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._answer(batch)
        finally:
            self._running -= 1

    async def _answer(self, batch: list[tuple[R, asyncio.Future[A]]]) -> None:
        try:
            answers = await self._run([request for request, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for {len(batch)} requests")
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException as exc:  # cancelled (the node stops): nobody waits forever
            for _, future in batch:
                if not future.done():
                    future.cancel()
            for _, future in self._waiting:
                future.cancel()
            self._waiting.clear()
            raise exc
        self.batches += 1
        self.requests += len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():  # its caller may have been cancelled meanwhile
                future.set_result(answer)
