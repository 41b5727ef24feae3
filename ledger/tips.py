"""Tips to a creator: from a wallet, or completed after a card payment succeeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.events import Event, record_events
from ledger.money import Money
from ledger.sales import Sale, pay_creator


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
