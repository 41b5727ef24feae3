"""Paying a creator from a wallet: the split between earnings and the platform fee."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ScalarSelect, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Account, Kind, Role, ensure_system_account, find_account, user_role
from ledger.errors import InvalidTransfer, UnknownAccount, UnknownCreator
from ledger.money import Money, platform_fee
from ledger.schema import accounts, users
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
        raise UnknownCreator(f"no creator {creator_id!r}", param="creator_id")
    try:
        return await find_account(session, creator_id, Kind.EARNINGS, currency)
    except UnknownAccount:
        raise UnknownCreator(
            f"creator {creator_id!r} has no earnings account in {currency}", param="currency"
        ) from None


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
    parties = (await session.execute(_parties(payer_id, creator_id, amount.currency))).one()
    if parties.creator_role != Role.CREATOR.value:
        raise UnknownCreator(f"no creator {creator_id!r}", param="creator_id")
    if parties.earnings is None:
        raise UnknownCreator(
            f"creator {creator_id!r} has no earnings account in {amount.currency}",
            param="currency",
        )
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


def _parties(payer_id: str, creator_id: str, currency: str) -> Select[Any]:
    """One read for everything a sale needs to know before it posts: the creator's role and
    earnings account, the payer's wallet and name, and the platform-fee account."""

    def account(owner_id: str | None, kind: Kind) -> ScalarSelect[Any]:
        owner = (
            accounts.c.owner_id.is_(None) if owner_id is None else accounts.c.owner_id == owner_id
        )
        where = [owner, accounts.c.kind == kind.value, accounts.c.currency == currency]
        if owner_id is None:
            where.append(accounts.c.provider.is_(None))
        return select(accounts.c.id).where(*where).scalar_subquery()

    def of_user(user_id: str, column: str) -> ScalarSelect[Any]:
        return select(users.c[column]).where(users.c.id == user_id).scalar_subquery()

    return select(
        of_user(creator_id, "role").label("creator_role"),
        account(creator_id, Kind.EARNINGS).label("earnings"),
        account(payer_id, Kind.WALLET).label("wallet"),
        account(None, Kind.PLATFORM_FEE).label("fee"),
        of_user(payer_id, "display_name").label("payer_name"),
    )
