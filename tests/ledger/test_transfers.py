"""post_transfer on real PostgreSQL: double entry, no overdraft, history, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.accounts import Kind, Role, ensure_system_account, find_account
from ledger.db import unit_of_work
from ledger.errors import DuplicateTransfer, InsufficientFunds, InvalidTransfer
from ledger.money import Money
from ledger.schema import accounts, entries, transfers
from ledger.transfers import Leg, post_transfer
from tests.conftest import create_user


async def wallet_id(sessions: async_sessionmaker[AsyncSession], user: str) -> int:
    async with sessions() as session:
        return (await find_account(session, user, Kind.WALLET, "NGN")).id


async def fee_id(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with unit_of_work(sessions) as uow:
        return await ensure_system_account(uow.session, Kind.PLATFORM_FEE, "NGN")


async def move(sessions, wallet: int, fee: int, amount: int) -> None:
    """Post `amount` from the wallet to the fee account (negative: back) in its own unit of work."""
    async with unit_of_work(sessions) as uow:
        await post_transfer(
            uow.session, kind="test", currency="NGN", legs=[Leg(wallet, -amount), Leg(fee, amount)]
        )


async def test_unbalanced_and_empty_transfers_are_refused(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN, fund=Money(1_000, "NGN"))
    wallet, fee = await wallet_id(sessions, user), await fee_id(sessions)
    for legs in (
        [],
        [Leg(wallet, -10), Leg(fee, 9)],
        [Leg(wallet, 0), Leg(fee, 0)],
        [Leg(wallet, -10), Leg(wallet, 10)],
    ):
        with pytest.raises(InvalidTransfer):
            async with unit_of_work(sessions) as uow:
                await post_transfer(uow.session, kind="test", currency="NGN", legs=legs)


async def test_overdraft_raises_and_the_rollback_leaves_nothing(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN, fund=Money(1_000, "NGN"))
    wallet, fee = await wallet_id(sessions, user), await fee_id(sessions)
    async with sessions() as session:
        transfers_before = await session.scalar(select(func.count()).select_from(transfers))
    with pytest.raises(InsufficientFunds):
        await move(sessions, wallet, fee, 1_001)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(transfers)) == (
            transfers_before
        )
        assert (await find_account(session, user, Kind.WALLET, "NGN")).balance == 1_000


async def test_references_are_unique(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN, fund=Money(1_000, "NGN"))
    wallet, fee = await wallet_id(sessions, user), await fee_id(sessions)
    legs = [Leg(wallet, -1), Leg(fee, 1)]
    async with unit_of_work(sessions) as uow:
        await post_transfer(uow.session, kind="t", currency="NGN", legs=legs, reference=user)
    with pytest.raises(DuplicateTransfer):
        async with unit_of_work(sessions) as uow:
            await post_transfer(uow.session, kind="t", currency="NGN", legs=legs, reference=user)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.integers(min_value=-3_000, max_value=3_000).filter(bool), max_size=12))
async def test_balances_equal_their_entries_and_never_go_negative(
    sessions, uid, moves: list[int]
) -> None:
    """Any sequence of moves between a wallet and the fee account: refused moves change
    nothing, and every balance equals the sum of its entries and the last balance_after."""
    user = uid("fan")
    await create_user(sessions, user, Role.FAN, fund=Money(2_000, "NGN"))
    wallet, fee = await wallet_id(sessions, user), await fee_id(sessions)
    expected = 2_000
    for change in moves:
        try:
            await move(sessions, wallet, fee, -change)
            expected += change
        except InsufficientFunds:
            # Refused: the wallet would go negative, or (a credit) the shared fee account would.
            assert expected + change < 0 or change > 0
    async with sessions() as session:
        balance = await session.scalar(select(accounts.c.balance).where(accounts.c.id == wallet))
        total = await session.scalar(
            select(func.sum(entries.c.amount)).where(entries.c.account_id == wallet)
        )
        last_after = await session.scalar(
            select(entries.c.balance_after)
            .where(entries.c.account_id == wallet)
            .order_by(entries.c.id.desc())
            .limit(1)
        )
    assert balance == total == last_after == expected >= 0


async def test_concurrent_debits_serialise_without_overdraft(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN, fund=Money(1_000, "NGN"))
    wallet, fee = await wallet_id(sessions, user), await fee_id(sessions)

    async def debit() -> bool:
        try:
            await move(sessions, wallet, fee, 300)
            return True
        except InsufficientFunds:
            return False

    results = await asyncio.gather(*(debit() for _ in range(10)))
    assert results.count(True) == 3
    async with sessions() as session:
        assert (await find_account(session, user, Kind.WALLET, "NGN")).balance == 100


async def test_every_transfer_sums_to_zero(sessions) -> None:
    async with sessions() as session:
        unbalanced = await session.scalar(
            select(func.count()).select_from(
                select(entries.c.transfer_id)
                .group_by(entries.c.transfer_id)
                .having(func.sum(entries.c.amount) != 0)
                .subquery()
            )
        )
    assert unbalanced == 0


async def test_amounts_beyond_32_bits_post(sessions, uid) -> None:
    user = uid("fan")
    big = 3 * 2**31  # minor units: a large but real amount in some currencies
    await create_user(sessions, user, Role.FAN, fund=Money(big, "NGN"))
    wallet, fee = await wallet_id(sessions, user), await fee_id(sessions)
    await move(sessions, wallet, fee, big - 1)
    async with sessions() as session:
        assert (await find_account(session, user, Kind.WALLET, "NGN")).balance == 1
