"""Users learnt from tokens: `ensure_user` creates them, `user_is_current` says when it need not."""

from __future__ import annotations

from ledger.accounts import Role, ensure_user, user_is_current
from ledger.db import unit_of_work

CURRENCIES = ("NGN", "USD")


async def test_a_user_is_current_only_once_ensure_user_would_change_nothing(sessions, uid) -> None:
    user = uid("fan")

    async def current(role: Role, currencies=CURRENCIES, name=None, email=None) -> bool:
        async with sessions() as session:
            return await user_is_current(session, user, role, currencies, name, email)

    async def ensure(role: Role, currencies=CURRENCIES, name=None, email=None) -> None:
        async with unit_of_work(sessions) as uow:
            await ensure_user(uow.session, user, role, currencies, name, email)

    assert not await current(Role.FAN)
    await ensure(Role.FAN, name="Ada")
    assert await current(Role.FAN)
    assert await current(Role.FAN, name="Ada")
    assert not await current(Role.FAN, name="Ada L.")  # a new name in the token is written
    assert not await current(Role.FAN, email="ada@example.com")
    assert not await current(Role.FAN, currencies=(*CURRENCIES, "GHS"))  # a new currency
    assert not await current(Role.CREATOR)  # a fan turning creator gains earnings accounts
    await ensure(Role.CREATOR, name="Ada L.", email="ada@example.com")
    assert await current(Role.CREATOR, name="Ada L.", email="ada@example.com")
    assert await current(Role.FAN)  # a creator presenting a fan token changes nothing
