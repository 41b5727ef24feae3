"""Paying a creator from a wallet: the split between earnings and the platform fee."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Account, Kind, Role, ensure_system_account, find_account, user_role
from ledger.errors import InvalidTransfer, UnknownAccount, UnknownCreator
from ledger.money import Money, platform_fee
from ledger.transfers import Leg, PostedEntry, PostedTransfer, post_transfer


@dataclass(frozen=True, slots=True)
class Sale:
    transfer: PostedTransfer
    fee: int
    wallet: PostedEntry
    earnings: PostedEntry
    payer_name: str | None = None

    @property
    def net(self) -> int:
        return self.transfer.entry(self.earnings.account_id).amount


async def creator_earnings(session: AsyncSession, creator_id: str, currency: str) -> Account:
    """The creator's earnings account in `currency`; UnknownCreator if there is no such creator."""
    if await user_role(session, creator_id) is not Role.CREATOR:
        raise _no_creator(creator_id)
    try:
        return await find_account(session, creator_id, Kind.EARNINGS, currency)
    except UnknownAccount:
        raise _no_earnings(creator_id, currency) from None


def _no_creator(creator_id: str) -> UnknownCreator:
    return UnknownCreator(f"no creator {creator_id}", param="creator_id")


def _no_earnings(creator_id: str, currency: str) -> UnknownCreator:
    return UnknownCreator(
        f"creator {creator_id} has no earnings account in {currency}", param="currency"
    )


# One read for everything a sale needs to know before it posts: the creator's role and
# earnings account, the payer's wallet and name, and the platform-fee account.
_PARTIES = text(
    """
    SELECT
      (SELECT role FROM users WHERE id = :creator) AS creator_role,
      (SELECT id FROM accounts
        WHERE owner_id = :creator AND kind = 'earnings' AND currency = :currency) AS earnings,
      (SELECT id FROM accounts
        WHERE owner_id = :payer AND kind = 'wallet' AND currency = :currency) AS wallet,
      (SELECT id FROM accounts WHERE owner_id IS NULL AND kind = 'platform_fee'
        AND currency = :currency AND provider IS NULL) AS fee,
      (SELECT display_name FROM users WHERE id = :payer) AS payer_name
    """
)


async def pay_creator(
    session: AsyncSession,
    *,
    payer_id: str,
    creator_id: str,
    amount: Money,
    fee_bps: int,
    kind: str,
    reference: str,
    metadata: Mapping[str, Any],
) -> Sale:
    """Debit the payer's wallet by `amount`; credit the creator `amount - fee` and the platform
    `fee`, where fee = platform_fee(amount, fee_bps) is computed here, on the server, and the
    rate is recorded on the transfer. Raises UnknownCreator, InsufficientFunds, InvalidTransfer.
    """
    if amount.amount <= 0:
        raise InvalidTransfer("amount must be a positive integer", param="amount")
    if payer_id == creator_id:
        raise InvalidTransfer("you cannot pay yourself", param="creator_id")
    parties = (
        await session.execute(
            _PARTIES, {"payer": payer_id, "creator": creator_id, "currency": amount.currency}
        )
    ).one()
    if parties.creator_role != Role.CREATOR.value:
        raise _no_creator(creator_id)
    if parties.earnings is None:
        raise _no_earnings(creator_id, amount.currency)
    if parties.wallet is None:
        raise UnknownAccount(f"no wallet account in {amount.currency} for {payer_id}")
    fee = platform_fee(amount.amount, fee_bps)
    legs = [Leg(parties.wallet, -amount.amount), Leg(parties.earnings, amount.amount - fee)]
    if fee:
        fee_account = parties.fee or await ensure_system_account(
            session, Kind.PLATFORM_FEE, amount.currency
        )
        legs.append(Leg(fee_account, fee))
    transfer = await post_transfer(
        session,
        kind=kind,
        currency=amount.currency,
        legs=legs,
        reference=reference,
        metadata=metadata,
        fee_bps=fee_bps,
    )
    return Sale(
        transfer=transfer,
        fee=fee,
        wallet=transfer.entry(parties.wallet),
        earnings=transfer.entry(parties.earnings),
        payer_name=parties.payer_name,
    )
