"""Provider payments: created pending with our reference, settled by the provider's webhook."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import UnknownPayment
from ledger.money import Money
from ledger.schema import payments

# How payments.verification starts when the provider's own API did not confirm a succeeded
# payment (migration 0006 indexes exactly these rows).
NOT_CONFIRMED = "NOT CONFIRMED"


class Purpose(StrEnum):
    TOPUP = "topup"  # credit the payer's wallet
    TIP = "tip"  # credit the wallet, then tip details["creator_id"] from it
    PURCHASE = "purchase"  # credit the wallet, then buy details["content_id"] from it


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    reference: str
    user_id: str
    provider: str
    amount: Money
    purpose: Purpose
    details: Mapping[str, Any]
    status: str
    provider_ref: str | None
    checkout_url: str | None
    refunded_amount: int
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "provider": self.provider,
            "amount": self.amount.as_json(),
            "purpose": self.purpose.value,
            "details": dict(self.details),
            "status": self.status,
            "checkout_url": self.checkout_url,
            "refunded": {"amount": self.refunded_amount, "currency": self.amount.currency},
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def new_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


async def create_payment(
    session: AsyncSession,
    *,
    user_id: str,
    provider: str,
    amount: Money,
    purpose: Purpose,
    details: Mapping[str, Any],
) -> Payment:
    row = (
        await session.execute(
            payments.insert()
            .values(
                reference=new_reference("pay"),
                user_id=user_id,
                provider=provider,
                amount=amount.amount,
                currency=amount.currency,
                purpose=purpose.value,
                details=dict(details),
            )
            .returning(*payments.c)
        )
    ).one()
    return _payment(row)


async def attach_checkout(
    session: AsyncSession, payment_id: int, provider_ref: str, checkout_url: str
) -> Payment:
    row = (
        await session.execute(
            update(payments)
            .where(payments.c.id == payment_id)
            .values(provider_ref=provider_ref, checkout_url=checkout_url, updated_at=func.now())
            .returning(*payments.c)
        )
    ).one()
    return _payment(row)


async def get_payment(session: AsyncSession, payment_id: int, *, lock: bool = False) -> Payment:
    query = select(payments).where(payments.c.id == payment_id)
    row = (await session.execute(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise UnknownPayment("no such payment", param="payment_id")
    return _payment(row)


_BY_REFERENCE = text(
    f"SELECT {', '.join(payments.c.keys())} FROM payments WHERE reference = :reference FOR UPDATE"
).columns(*payments.c)

# A value left None is left as it is.
_SET_STATUS = text(
    """
    UPDATE payments SET status = :status, updated_at = now(),
        provider_ref = COALESCE(:provider_ref, provider_ref),
        transfer_id = COALESCE(:transfer_id, transfer_id),
        failure_reason = COALESCE(:failure_reason, failure_reason)
    WHERE id = :id
    """
).bindparams(bindparam("id", type_=BigInteger), bindparam("transfer_id", type_=BigInteger))


async def find_by_reference(session: AsyncSession, reference: str) -> Payment | None:
    """The payment with our `reference`, locked for the caller's transaction."""
    row = (await session.execute(_BY_REFERENCE, {"reference": reference})).one_or_none()
    return _payment(row) if row is not None else None


async def set_status(
    session: AsyncSession,
    payment_id: int,
    status: str,
    *,
    transfer_id: int | None = None,
    failure_reason: str | None = None,
    provider_ref: str | None = None,
) -> None:
    await session.execute(
        _SET_STATUS,
        {
            "id": payment_id,
            "status": status,
            "provider_ref": provider_ref,
            "transfer_id": transfer_id,
            "failure_reason": failure_reason,
        },
    )


async def count_unconfirmed(session: AsyncSession) -> int:
    """Succeeded payments that their provider's API did not confirm (money credited anyway)."""
    # The pattern is written out, not bound: only then may PostgreSQL use the partial index.
    count = await session.scalar(
        text(
            "SELECT count(*) FROM payments WHERE status = 'succeeded' "
            f"AND verification LIKE '{NOT_CONFIRMED}%'"
        )
    )
    return int(count or 0)


def _payment(row: object) -> Payment:
    m = row._mapping  # type: ignore[attr-defined]
    return Payment(
        id=m["id"],
        reference=m["reference"],
        user_id=m["user_id"],
        provider=m["provider"],
        amount=Money(m["amount"], m["currency"]),
        purpose=Purpose(m["purpose"]),
        details=m["details"],
        status=m["status"],
        provider_ref=m["provider_ref"],
        checkout_url=m["checkout_url"],
        refunded_amount=m["refunded_amount"],
        failure_reason=m["failure_reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )
