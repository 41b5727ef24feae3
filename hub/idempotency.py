"""Running a money-moving command exactly once per (caller, Idempotency-Key)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.auth import CONTROL
from hub.errors import ApiError, ledger_error_response
from ledger import idempotency
from ledger.db import UnitOfWork, unit_of_work
from ledger.errors import LedgerError

Command = Callable[[UnitOfWork], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int
    body: str  # JSON text
    replayed: bool


def idempotency_key(header: str | None) -> str:
    if header is None or not header.strip():
        raise ApiError(
            400,
            "idempotency_key_missing",
            "money-moving requests need an Idempotency-Key header",
            "Idempotency-Key",
        )
    key = header.strip()
    if CONTROL.search(key):
        raise ApiError(
            400,
            "invalid_request",
            "Idempotency-Key must not contain control characters",
            "Idempotency-Key",
        )
    if len(key) > idempotency.MAX_KEY_LENGTH:
        raise ApiError(
            400,
            "invalid_request",
            f"Idempotency-Key is at most {idempotency.MAX_KEY_LENGTH} characters",
            "Idempotency-Key",
        )
    return key


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    *,
    caller_id: str,
    key: str,
    fingerprint: str,
    command: Command,
) -> Outcome:
    """Run `command` in one transaction with its key, or replay the response saved under it.

    A business failure (a LedgerError) is saved and replayed like a success: the command's
    writes are rolled back to a savepoint, the error response commits with the key.
    """
    async with unit_of_work(sessions) as uow:
        saved = await idempotency.claim(uow.session, caller_id, key, fingerprint)
        if saved is not None:
            return Outcome(saved.status_code, saved.body, replayed=True)
        try:
            async with uow.savepoint():
                status, body = await command(uow)
        except LedgerError as exc:
            status, body = ledger_error_response(exc)
        text = dump_json(body)
        await idempotency.save(uow.session, caller_id, key, status, text)
    return Outcome(status, text, replayed=False)


def dump_json(body: dict[str, Any]) -> str:
    """The same serialisation as Starlette's JSONResponse."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
