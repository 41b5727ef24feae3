"""Tips to a creator: from a wallet, or completed after a card payment succeeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.events import Event, record_events
from ledger.money import Money
from ledger.sales import Sale, pay_creator
from ledger.statements import MAX_PAGE


@dataclass(frozen=True, slots=True)
class Tip:
    sale: Sale
    fan_id: str
    creator_id: str
    amount: Money
    message: str | None
    events: list[Event]

    @property
    def transfer_id(self) -> int:
        return self.sale.transfer.id

    def as_json(self) -> dict[str, Any]:
        transfer, currency = self.sale.transfer, self.amount.currency
        return {
            "id": transfer.id,
            "kind": "tip",
            "fan_id": self.fan_id,
            "creator_id": self.creator_id,
            "amount": self.amount.as_json(),
            "fee": {"amount": self.sale.fee, "currency": currency},
            "net": {"amount": self.sale.net, "currency": currency},
            "message": self.message,
            "created_at": transfer.created_at.isoformat(),
            "entries": [
                {
                    "account_id": e.account_id,
                    "owner_id": e.owner_id,
                    "kind": e.kind,
                    "amount": e.amount,
                }
                for e in transfer.entries
            ],
        }


_INSERT_TIP = text(
    """
    INSERT INTO tips (transfer_id, fan_id, creator_id, amount, fee, currency, message, payment_id)
    VALUES (:transfer_id, :fan_id, :creator_id, :amount, :fee, :currency, :message, :payment_id)
    """
).bindparams(
    bindparam("transfer_id", type_=BigInteger),
    bindparam("amount", type_=BigInteger),
    bindparam("fee", type_=BigInteger),
    bindparam("payment_id", type_=BigInteger),
)


async def send_tip(
    session: AsyncSession,
    *,
    fan_id: str,
    creator_id: str,
    amount: Money,
    message: str | None,
    fee_bps: int,
    reference: str,
    payment_id: int | None = None,
) -> Tip:
    """Move `amount` from the fan's wallet to the creator's earnings and the platform fee, and
    write tip.received (creator), tip.sent and balance.updated (both) in the same transaction.
    Raises UnknownCreator, InsufficientFunds or InvalidTransfer; the caller rolls back.
    """
    sale = await pay_creator(
        session,
        payer_id=fan_id,
        creator_id=creator_id,
        amount=amount,
        fee_bps=fee_bps,
        kind="tip",
        reference=reference,
        metadata={"fan_id": fan_id, "creator_id": creator_id, "payment_id": payment_id},
    )
    await session.execute(
        _INSERT_TIP,
        {
            "transfer_id": sale.transfer.id,
            "fan_id": fan_id,
            "creator_id": creator_id,
            "amount": amount.amount,
            "fee": sale.fee,
            "currency": amount.currency,
            "message": message,
            "payment_id": payment_id,
        },
    )
    tip_data = {
        "tip_id": sale.transfer.id,
        "fan_id": fan_id,
        "fan_name": sale.payer_name,
        "creator_id": creator_id,
        "amount": amount.amount,
        "fee": sale.fee,
        "net": sale.net,
        "currency": amount.currency,
        "message": message,
        "payment_id": payment_id,
    }
    events = await record_events(
        session,
        [
            (creator_id, "tip.received", tip_data),
            (fan_id, "tip.sent", tip_data),
            (fan_id, "balance.updated", sale.wallet.balance_event(amount.currency)),
            (creator_id, "balance.updated", sale.earnings.balance_event(amount.currency)),
        ],
    )
    return Tip(
        sale=sale,
        fan_id=fan_id,
        creator_id=creator_id,
        amount=amount,
        message=message,
        events=events,
    )


TipDirection = Literal["received", "sent"]


def _list_tips(owner: str, paged: bool) -> TextClause:
    # `owner` is a column name from _TIP_LISTS below, never user input.
    return text(
        f"""
        SELECT t.transfer_id, t.fan_id, fan.display_name AS fan_name, t.creator_id,
               creator.display_name AS creator_name, t.amount, t.fee, t.currency, t.message,
               t.payment_id, t.created_at
        FROM tips t
        JOIN users fan ON fan.id = t.fan_id
        JOIN users creator ON creator.id = t.creator_id
        WHERE t.{owner} = :user_id {"AND t.transfer_id < :before" if paged else ""}
        ORDER BY t.transfer_id DESC
        LIMIT :limit
        """
    )


# One statement per (direction, paged): each an index range scan on tips_creator or tips_fan.
_TIP_LISTS = {
    (direction, paged): _list_tips(owner, paged)
    for direction, owner in (("received", "creator_id"), ("sent", "fan_id"))
    for paged in (False, True)
}


async def list_tips(
    session: AsyncSession,
    user_id: str,
    direction: TipDirection,
    *,
    limit: int,
    before: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The tips `user_id` received (as the creator) or sent (as the fan), newest first; (page,
    cursor for the next page or None). Keyset pagination on the tip's transfer id, as in
    ledger.statements.list_entries: nobody else's tips, and none twice across pages.
    """
    limit = max(1, min(limit, MAX_PAGE))
    params: dict[str, Any] = {"user_id": user_id, "limit": limit + 1}
    if before is not None:
        params["before"] = before
    rows = (await session.execute(_TIP_LISTS[direction, before is not None], params)).all()
    page = [
        {
            "id": row.transfer_id,
            "fan_id": row.fan_id,
            "fan_name": row.fan_name,
            "creator_id": row.creator_id,
            "creator_name": row.creator_name,
            "amount": {"amount": row.amount, "currency": row.currency},
            "fee": {"amount": row.fee, "currency": row.currency},
            "net": {"amount": row.amount - row.fee, "currency": row.currency},
            "message": row.message,
            "payment_id": row.payment_id,
            "created_at": row.created_at.isoformat(),
        }
        for row in rows[:limit]
    ]
    cursor = rows[limit - 1].transfer_id if len(rows) > limit else None
    return page, cursor
