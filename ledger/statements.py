"""Statements: a user's entries newest first (keyset pages), and balances as of a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.schema import accounts, entries, transfers

MAX_PAGE = 100


async def list_entries(
    session: AsyncSession,
    owner_id: str,
    *,
    limit: int = 20,
    before: int | None = None,
    kind: str | None = None,
    account_kind: str | None = None,
    currency: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The owner's entries, newest first; (page, cursor for the next page or None).

    Keyset pagination on the entry id: stable while new entries arrive, and an index range
    scan per page however deep the page.
    """
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        select(
            entries.c.id,
            entries.c.amount,
            entries.c.currency,
            entries.c.balance_after,
            entries.c.created_at,
            accounts.c.kind.label("account_kind"),
            transfers.c.id.label("transfer_id"),
            transfers.c.kind,
            transfers.c.reverses_id,
            transfers.c.fee_bps,
            transfers.c.metadata,
        )
        .select_from(
            entries.join(accounts, accounts.c.id == entries.c.account_id).join(
                transfers, transfers.c.id == entries.c.transfer_id
            )
        )
        .where(accounts.c.owner_id == owner_id)
        .order_by(entries.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(entries.c.id < before)
    if kind is not None:
        query = query.where(transfers.c.kind == kind)
    if account_kind is not None:
        query = query.where(accounts.c.kind == account_kind)
    if currency is not None:
        query = query.where(entries.c.currency == currency)
    rows = (await session.execute(query)).all()
    page = [
        {
            "id": row.id,
            "transfer_id": row.transfer_id,
            "kind": row.kind,
            "account": row.account_kind,
            "amount": {"amount": row.amount, "currency": row.currency},
            "balance_after": row.balance_after,
            "reverses": row.reverses_id,
            "fee_bps": row.fee_bps,
            "details": {k: v for k, v in row.metadata.items() if v is not None},
            "created_at": row.created_at.isoformat(),
        }
        for row in rows[:limit]
    ]
    cursor = rows[limit - 1].id if len(rows) > limit else None
    return page, cursor


async def balance_as_of(session: AsyncSession, account_id: int, at: datetime) -> int:
    """The account's posted balance at `at`: the balance after its last entry up to then."""
    value = await session.scalar(
        select(entries.c.balance_after)
        .where(entries.c.account_id == account_id, entries.c.created_at <= at)
        .order_by(entries.c.created_at.desc(), entries.c.id.desc())
        .limit(1)
    )
    return int(value) if value is not None else 0
