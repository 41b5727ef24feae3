"""Group commit: money commands that arrive together run in one transaction, one fsync.

Commands queue in the process; each of a few lanes takes whatever is waiting (up to a batch),
runs it in one transaction on its own connection, and answers every command of it after the
commit. There is no waiting window: a lone command finds a lane free and runs at once, alone;
under load, commands queue while the lanes commit, and the next batch takes them all. So a
batch grows with the load by itself, and a hot account (the platform fee) is locked once per
batch instead of once per command.

What follows a commit (publishing the batch's events, one pipeline for all of them) is `after`,
called once per batch with its answers, after the commit and before any command is answered; its
failure, or its taking longer than `after_timeout`, is logged and changes no answer (the money
committed; a sweeper republishes events), so a slow Redis cannot hold a lane.

A refusal is an answer of its own command (the batch function returns it as data). A deadlock or
serialization failure rolls the whole batch back and runs it again. An error in what a command
carries (a value PostgreSQL or the driver refuses) rolls the batch back and runs each of its
commands alone, so that only the command at fault fails. Any other failure (the database is
away) is every command's error, and nothing of the batch committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg

log = logging.getLogger(__name__)

C = TypeVar("C")
A = TypeVar("A")
Run = Callable[[Any, Sequence[C]], Awaitable[Sequence[A]]]
After = Callable[[Sequence[A]], Awaitable[None]]
_RETRIED = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def _command_at_fault(exc: BaseException) -> bool:
    """An error one command's data may cause: the driver could not encode an argument, or
    PostgreSQL refused a value (SQLSTATE classes 22 data exception, 23 constraint)."""
    if isinstance(exc, asyncpg.exceptions.DataError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and str(state)[:2] in ("22", "23")


class GroupCommit(Generic[C, A]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        run: Run[C, A],
        *,
        max_batch: int = 64,
        lanes: int = 2,
        attempts: int = 3,
        acquire_timeout: float | None = None,
        after: After[A] | None = None,
        after_timeout: float = 0.5,
    ) -> None:
        self._pool = pool
        self._run = run
        self.max_batch = max_batch
        self.lanes = lanes
        self._attempts = attempts
        self._acquire_timeout = acquire_timeout
        self._after = after
        self._after_timeout = after_timeout
        self._waiting: list[tuple[C, asyncio.Future[A]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # committed so far, and the commands they held
        self.commands = 0

    async def submit(self, command: C) -> A:
        """Run `command` in the next batch; its answer once that batch committed."""
        future: asyncio.Future[A] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future))
        if self._running < self.lanes:
            self._running += 1
            task = asyncio.create_task(self._lane(), name="group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _lane(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._commit(batch, isolate=len(batch) > 1)
        finally:
            self._running -= 1

    async def _commit(self, batch: list[tuple[C, asyncio.Future[A]]], isolate: bool) -> None:
        commands = [command for command, _ in batch]
        for attempt in range(1, self._attempts + 1):
            try:
                async with (
                    self._pool.acquire(timeout=self._acquire_timeout) as connection,
                    connection.transaction(),
                ):
                    answers = await self._run(connection, commands)
                break
            except _RETRIED as exc:
                if attempt == self._attempts:
                    self._fail(batch, exc)
                    return
                log.warning("batch of %d rolled back (%s): again", len(batch), type(exc).__name__)
            except Exception as exc:
                if isolate and _command_at_fault(exc):
                    log.warning("batch of %d refused (%s): each command alone", len(batch), exc)
                    for one in batch:
                        await self._commit([one], isolate=False)
                    return
                self._fail(batch, exc)
                return
            except BaseException as exc:
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                return
        self.batches += 1
        self.commands += len(batch)
        if self._after is not None:
            try:
                await asyncio.wait_for(self._after(answers), self._after_timeout)
            except TimeoutError:
                log.warning("after the commit of a batch of %d: gave up waiting", len(batch))
            except Exception:
                log.exception("after the commit of a batch of %d", len(batch))
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    @staticmethod
    def _fail(batch: list[tuple[C, asyncio.Future[A]]], exc: BaseException) -> None:
        for _, future in batch:
            if future.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
