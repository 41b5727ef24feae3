"""Posting double-entry transfers: the only way money moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import DuplicateTransfer, InsufficientFunds, InvalidTransfer, UnknownAccount
from ledger.schema import accounts, entries, transfers


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


# A debit may not take an account below its holds (available = balance - held < 0), unless the
# account may go negative, or the transfer is a reversal allowed to push earnings below zero.
_APPLY = text(
    """
    UPDATE accounts SET balance = balance + :amount, version = version + 1
    WHERE id = :id AND currency = :currency
      AND (:amount >= 0 OR may_go_negative OR balance + :amount >= held
           OR (:negative_earnings AND kind = 'earnings'))
    RETURNING owner_id, kind, balance, version, held
    """
).bindparams(
    # Typed: untyped, asyncpg would take :amount for a 32-bit integer and refuse ≥ 2^31.
    bindparam("amount", type_=BigInteger),
    bindparam("id", type_=BigInteger),
    bindparam("negative_earnings", type_=Boolean),
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
    may not go negative ends below its pending holds (else InsufficientFunds and the caller must
    roll back) — only a reversal (refund, chargeback) may pass `negative_earnings` to let a
    creator's earnings go below zero;
    `reference`, when given, is unique across all transfers. Accounts are locked in ascending id
    order so that concurrent transfers never deadlock. Each entry records the balance after it.
    """
    if not legs or any(leg.amount == 0 for leg in legs):
        raise InvalidTransfer("a transfer needs legs with non-zero amounts")
    if sum(leg.amount for leg in legs) != 0:
        raise InvalidTransfer("the legs of a transfer must sum to zero")
    if len({leg.account_id for leg in legs}) != len(legs):
        raise InvalidTransfer("each account may appear once in a transfer")

    try:
        async with session.begin_nested():
            row = (
                await session.execute(
                    transfers.insert()
                    .values(
                        kind=kind,
                        currency=currency,
                        reference=reference,
                        metadata=dict(metadata or {}),
                        fee_bps=fee_bps,
                        reverses_id=reverses_id,
                    )
                    .returning(transfers.c.id, transfers.c.created_at)
                )
            ).one()
    except IntegrityError:
        raise DuplicateTransfer(f"a transfer with reference {reference!r} exists") from None
    transfer_id, created_at = row

    posted: list[PostedEntry] = []
    for leg in sorted(legs, key=lambda leg: leg.account_id):
        applied = (
            await session.execute(
                _APPLY,
                {
                    "id": leg.account_id,
                    "amount": leg.amount,
                    "currency": currency,
                    "negative_earnings": negative_earnings,
                },
            )
        ).one_or_none()
        if applied is None:
            await _explain_refusal(session, leg, currency)
        assert applied is not None
        posted.append(
            PostedEntry(
                account_id=leg.account_id,
                owner_id=applied.owner_id,
                kind=applied.kind,
                amount=leg.amount,
                balance_after=applied.balance,
                version=applied.version,
                held=applied.held,
            )
        )
    await session.execute(
        entries.insert(),
        [
            {
                "transfer_id": transfer_id,
                "account_id": e.account_id,
                "amount": e.amount,
                "currency": currency,
                "balance_after": e.balance_after,
            }
            for e in posted
        ],
    )
    return PostedTransfer(
        id=transfer_id,
        kind=kind,
        currency=currency,
        created_at=created_at,
        entries=tuple(posted),
    )


async def _explain_refusal(session: AsyncSession, leg: Leg, currency: str) -> None:
    row = (
        await session.execute(
            select(accounts.c.currency, accounts.c.owner_id, accounts.c.kind).where(
                accounts.c.id == leg.account_id
            )
        )
    ).one_or_none()
    if row is None or row.currency != currency:
        raise UnknownAccount(f"account {leg.account_id} does not exist in {currency}")
    raise InsufficientFunds(
        f"the {row.kind} account has too little {currency} for this transfer", param="amount"
    )
