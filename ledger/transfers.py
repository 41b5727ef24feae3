"""Posting double-entry transfers: the only way money moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import DuplicateTransfer, InsufficientFunds, InvalidTransfer, UnknownAccount


@dataclass(frozen=True, slots=True)
class Leg:
    account_id: int
    amount: int  # signed minor units: positive raises the account's balance, negative lowers it


@dataclass(frozen=True, slots=True)
class PostedEntry:
    account_id: int
    owner_id: str | None
    kind: str
    amount: int
    balance_after: int
    version: int
    held: int = 0

    @property
    def available(self) -> int:
        return self.balance_after - self.held

    def balance_event(self, currency: str) -> dict[str, Any]:
        """The data of the balance.updated event this entry causes for its owner."""
        return {
            "account_id": self.account_id,
            "kind": self.kind,
            "currency": currency,
            "balance": self.balance_after,
            "available": self.available,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class PostedTransfer:
    id: int
    kind: str
    currency: str
    created_at: datetime
    entries: tuple[PostedEntry, ...]

    def entry(self, account_id: int) -> PostedEntry:
        return next(e for e in self.entries if e.account_id == account_id)


# Posting is two statements, whatever the number of legs: lock the accounts (and read what the
# checks need), then, once the checks passed in Python on the locked rows, one statement that
# inserts the transfer, applies every leg and writes the entries. Accounts are locked owners'
# first, then system accounts (platform fee, provider clearing), each group in ascending id:
# one fixed order, so concurrent transfers never deadlock, and the hot system rows are held
# for the shortest time.
_LOCK = text(
    """
    SELECT id, owner_id, kind, currency, balance, held, may_go_negative
    FROM accounts WHERE id = ANY(:ids)
    ORDER BY owner_id IS NULL, id
    FOR UPDATE
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))

# A reference taken already inserts no transfer, so no leg applies and nothing is returned.
_POST = text(
    """
    WITH t AS (
        INSERT INTO transfers (kind, currency, reference, metadata, fee_bps, reverses_id)
        VALUES (:kind, :currency, :reference, :metadata, :fee_bps, :reverses_id)
        ON CONFLICT (reference) DO NOTHING
        RETURNING id, created_at
    ), legs AS (
        SELECT * FROM unnest(:ids, :amounts) AS leg(id, amount)
    ), applied AS (
        UPDATE accounts SET balance = accounts.balance + legs.amount,
                            version = accounts.version + 1
        FROM legs, t WHERE accounts.id = legs.id
        RETURNING accounts.id, accounts.owner_id, accounts.kind, accounts.balance,
                  accounts.version, accounts.held, legs.amount
    ), written AS (
        INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
        SELECT t.id, applied.id, applied.amount, :currency, applied.balance FROM t, applied
    )
    SELECT t.id AS transfer_id, t.created_at, applied.* FROM t CROSS JOIN applied
    ORDER BY applied.id
    """
).bindparams(
    # Typed: untyped, asyncpg would take amounts for 32-bit integers and refuse ≥ 2^31.
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("amounts", type_=ARRAY(BigInteger)),
    bindparam("metadata", type_=JSONB),
    bindparam("fee_bps", type_=Integer),
    bindparam("reverses_id", type_=BigInteger),
)


async def post_transfer(
    session: AsyncSession,
    *,
    kind: str,
    currency: str,
    legs: Sequence[Leg],
    reference: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    fee_bps: int | None = None,
    reverses_id: int | None = None,
    negative_earnings: bool = False,
) -> PostedTransfer:
    """Post one transfer atomically within the caller's transaction.

    Invariants: the legs sum to zero; every account exists and is in `currency`; no account that
    may not go negative ends below its pending holds (else InsufficientFunds, before anything is
    written) — only a reversal (refund, chargeback) may pass `negative_earnings` to let a
    creator's earnings go below zero; `reference`, when given, is unique across all transfers
    (else DuplicateTransfer, with nothing written). Each entry records the balance after it.
    """
    if not legs or any(leg.amount == 0 for leg in legs):
        raise InvalidTransfer("a transfer needs legs with non-zero amounts")
    if sum(leg.amount for leg in legs) != 0:
        raise InvalidTransfer("the legs of a transfer must sum to zero")
    if len({leg.account_id for leg in legs}) != len(legs):
        raise InvalidTransfer("each account may appear once in a transfer")

    ids = [leg.account_id for leg in legs]
    locked = {row.id: row for row in await session.execute(_LOCK, {"ids": ids})}
    for leg in legs:
        row = locked.get(leg.account_id)
        if row is None or row.currency != currency:
            raise UnknownAccount(f"account {leg.account_id} does not exist in {currency}")
        allowed = (
            leg.amount > 0
            or row.may_go_negative
            or row.balance + leg.amount >= row.held
            or (negative_earnings and row.kind == "earnings")
        )
        if not allowed:
            raise InsufficientFunds(
                f"the {row.kind} account has too little {currency} for this transfer",
                param="amount",
            )

    rows = (
        await session.execute(
            _POST,
            {
                "kind": kind,
                "currency": currency,
                "reference": reference,
                "metadata": dict(metadata or {}),
                "fee_bps": fee_bps,
                "reverses_id": reverses_id,
                "ids": ids,
                "amounts": [leg.amount for leg in legs],
            },
        )
    ).all()
    if not rows:
        raise DuplicateTransfer(f"a transfer with reference {reference} exists")
    posted = tuple(
        PostedEntry(
            account_id=row.id,
            owner_id=row.owner_id,
            kind=row.kind,
            amount=row.amount,
            balance_after=row.balance,
            version=row.version,
            held=row.held,
        )
        for row in rows
    )
    return PostedTransfer(
        id=rows[0].transfer_id,
        kind=kind,
        currency=currency,
        created_at=rows[0].created_at,
        entries=posted,
    )
