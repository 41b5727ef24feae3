"""Tips from a fan's wallet to a creator: the split, the tip record and its events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Kind, Role, ensure_system_account, find_account, user_role
from ledger.errors import InvalidTransfer, UnknownAccount, UnknownCreator
from ledger.events import Event, record_events
from ledger.money import Money, platform_fee
from ledger.schema import tips
from ledger.transfers import Leg, PostedEntry, PostedTransfer, post_transfer


@dataclass(frozen=True, slots=True)
class Tip:
    transfer: PostedTransfer
    fan_id: str
    creator_id: str
    amount: Money
    fee: int
    message: str | None
    events: list[Event]

    @property
    def net(self) -> int:
        return self.amount.amount - self.fee

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.transfer.id,
            "kind": "tip",
            "fan_id": self.fan_id,
            "creator_id": self.creator_id,
            "amount": self.amount.as_json(),
            "fee": {"amount": self.fee, "currency": self.amount.currency},
            "net": {"amount": self.net, "currency": self.amount.currency},
            "message": self.message,
            "created_at": self.transfer.created_at.isoformat(),
            "entries": [
                {
                    "account_id": e.account_id,
                    "owner_id": e.owner_id,
                    "kind": e.kind,
                    "amount": e.amount,
                }
                for e in self.transfer.entries
            ],
        }


def _balance(entry: PostedEntry, currency: str) -> dict[str, Any]:
    return {
        "account_id": entry.account_id,
        "kind": entry.kind,
        "currency": currency,
        "balance": entry.balance_after,
        "available": entry.balance_after,
        "version": entry.version,
    }


async def send_tip(
    session: AsyncSession,
    *,
    fan_id: str,
    creator_id: str,
    amount: Money,
    message: str | None,
    fee_bps: int,
    reference: str,
) -> Tip:
    """Move `amount` from the fan's wallet to the creator's earnings and the platform fee.

    The fee is computed here, on the server, in the same transaction as the split (see
    ledger.money.platform_fee for the rounding rule). Writes tip.received for the creator and
    tip.sent and balance.updated for both sides as event rows in the same transaction.
    Raises UnknownCreator, InsufficientFunds or InvalidTransfer; the caller rolls back.
    """
    if amount.amount <= 0:
        raise InvalidTransfer("amount must be a positive integer", param="amount")
    if fan_id == creator_id:
        raise InvalidTransfer("you cannot tip yourself", param="creator_id")
    if await user_role(session, creator_id) is not Role.CREATOR:
        raise UnknownCreator(f"no creator {creator_id!r}", param="creator_id")
    try:
        earnings = await find_account(session, creator_id, Kind.EARNINGS, amount.currency)
    except UnknownAccount:
        raise UnknownCreator(
            f"creator {creator_id!r} has no earnings account in {amount.currency}",
            param="currency",
        ) from None
    wallet = await find_account(session, fan_id, Kind.WALLET, amount.currency)
    fee_account = await ensure_system_account(session, Kind.PLATFORM_FEE, amount.currency)

    fee = platform_fee(amount.amount, fee_bps)
    legs = [Leg(wallet.id, -amount.amount), Leg(earnings.id, amount.amount - fee)]
    if fee:
        legs.append(Leg(fee_account, fee))
    transfer = await post_transfer(
        session,
        kind="tip",
        currency=amount.currency,
        legs=legs,
        reference=reference,
        metadata={"fan_id": fan_id, "creator_id": creator_id, "fee_bps": fee_bps},
    )
    await session.execute(
        tips.insert().values(
            transfer_id=transfer.id,
            fan_id=fan_id,
            creator_id=creator_id,
            amount=amount.amount,
            fee=fee,
            currency=amount.currency,
            message=message,
        )
    )
    tip_data = {
        "tip_id": transfer.id,
        "fan_id": fan_id,
        "creator_id": creator_id,
        "amount": amount.amount,
        "fee": fee,
        "net": amount.amount - fee,
        "currency": amount.currency,
        "message": message,
    }
    events = await record_events(
        session,
        [
            (creator_id, "tip.received", tip_data),
            (fan_id, "tip.sent", tip_data),
            (fan_id, "balance.updated", _balance(transfer.entry(wallet.id), amount.currency)),
            (creator_id, "balance.updated", _balance(transfer.entry(earnings.id), amount.currency)),
        ],
    )
    return Tip(
        transfer=transfer,
        fan_id=fan_id,
        creator_id=creator_id,
        amount=amount,
        fee=fee,
        message=message,
        events=events,
    )
