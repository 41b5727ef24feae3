"""Idempotency keys for money-moving commands, enforced in PostgreSQL.

A key is scoped to its caller. Within the command's own transaction the key is claimed under a
transaction-scoped advisory lock, so a second request with the same key either finds the saved
response (after the first committed) or finds the lock taken (still in flight). The saved
response commits with the money movement, so a key is never "used" without its outcome.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import IdempotencyInFlight, IdempotencyKeyReused
from ledger.schema import idempotency_keys

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class SavedResponse:
    status_code: int
    body: str  # JSON text, exactly as first sent


def transfer_reference(kind: str, caller_id: str, key: str) -> str:
    """The unique reference of the transfer that `caller_id`'s Idempotency-Key `key` makes.

    `key:<kind>:<length of caller_id>:<caller_id>:<key>`: the length keeps two callers apart
    whatever their ids and keys hold (fan `a` with key `b:K` is not fan `a:b` with key `K`), and
    no reference of any other shape starts with `key:` (migration 0009 rewrote the old ones).
    """
    return f"key:{kind}:{len(caller_id)}:{caller_id}:{key}"


def request_fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_CLAIM = text(
    """
    WITH lock AS (SELECT pg_try_advisory_xact_lock(hashtextextended(:scope, 0)) AS locked),
    claimed AS (
        INSERT INTO idempotency_keys (caller_id, key, request_hash)
        SELECT :caller_id, :key, :fingerprint FROM lock WHERE locked
        ON CONFLICT DO NOTHING
        RETURNING key
    )
    SELECT lock.locked, EXISTS (SELECT 1 FROM claimed) AS inserted FROM lock
    """
)

_SAVE = text(
    """
    UPDATE idempotency_keys SET status_code = :status_code, response = :body, completed_at = now()
    WHERE caller_id = :caller_id AND key = :key
    """
)


async def claim(
    session: AsyncSession, caller_id: str, key: str, fingerprint: str
) -> SavedResponse | None:
    """Claim `key` for this transaction, or return the response saved under it.

    Raises IdempotencyInFlight when another transaction holds the key, and IdempotencyKeyReused
    when the key was used with a different request.
    """
    # One round trip: take the key's lock, and only with it claim the key.
    locked, inserted = (
        await session.execute(
            _CLAIM,
            {
                "scope": f"idempotency:{len(caller_id)}:{caller_id}:{key}",
                "caller_id": caller_id,
                "key": key,
                "fingerprint": fingerprint,
            },
        )
    ).one()
    if not locked:
        raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")
    if inserted:
        return None
    row = (
        await session.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.caller_id == caller_id, idempotency_keys.c.key == key
            )
        )
    ).one()
    if row.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request", param="Idempotency-Key"
        )
    if row.status_code is None:
        # Claimed by a transaction that committed without saving: cannot happen through
        # `save`, so treat it as in flight rather than run the command twice.
        raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")
    return SavedResponse(status_code=row.status_code, body=row.response)


async def save(
    session: AsyncSession, caller_id: str, key: str, status_code: int, body: str
) -> None:
    await session.execute(
        _SAVE, {"caller_id": caller_id, "key": key, "status_code": status_code, "body": body}
    )
