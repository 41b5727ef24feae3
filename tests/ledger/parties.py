"""What the ledger's batch-function tests share: a creator with earnings to pay out, and the
exception that rolls back a run of the SQLAlchemy path kept only for comparison."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.accounts import Role
from ledger.funding import fund_wallet_for_development
from ledger.money import Money
from ledger.tips import send_tip
from tests.conftest import create_user


class RolledBack(Exception):
    """Raised to roll back the reference run of the SQLAlchemy path once it has been read."""


async def earning(sessions: Any, uid: Callable[[str], str], amount: int) -> str:
    """A creator with `amount` NGN of earnings (a fan's tip with no fee)."""
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN)
    async with sessions() as session, session.begin():
        money = Money(amount, "NGN")
        await fund_wallet_for_development(session, fan, money, reference=f"fund:{fan}")
        await send_tip(
            session,
            fan_id=fan,
            creator_id=creator,
            amount=money,
            message=None,
            fee_bps=0,
            reference=f"earn:{creator}",
        )
    return creator
