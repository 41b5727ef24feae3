"""Demo data for `hub dev`: one creator, two fans funded through the ledger, one admin."""

from __future__ import annotations

from dataclasses import dataclass

from hub.runtime import Runtime
from ledger.accounts import DEFAULT_APP, Role, ensure_user
from ledger.apps import Scope, create_key, list_keys, revoke_key
from ledger.db import make_engine, make_sessions, unit_of_work
from ledger.funding import fund_wallet_for_development
from ledger.money import Money


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    role: Role
    name: str


CREATOR = DemoUser("demo-creator", Role.CREATOR, "Demo Creator")
FANS = (
    DemoUser("demo-fan-1", Role.FAN, "Ada (demo fan)"),
    DemoUser("demo-fan-2", Role.FAN, "Tunde (demo fan)"),
)
ADMIN = DemoUser("demo-admin", Role.ADMIN, "Demo Admin")
DEMO_USERS = (CREATOR, *FANS, ADMIN)
FUNDING = {"NGN": 5_000_000, "USD": 10_000}  # ₦50,000.00 and $100.00 per fan


async def seed(runtime: Runtime) -> list[DemoUser]:
    """Create the demo users; fund each fan once (a second run changes nothing)."""
    currencies = runtime.settings.currencies
    engine = make_engine(runtime.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessions(engine)) as uow:
            for user in DEMO_USERS:
                await ensure_user(uow.session, user.user_id, user.role, currencies, user.name)
            for fan in FANS:
                for currency, amount in FUNDING.items():
                    if currency in currencies:
                        await fund_wallet_for_development(
                            uow.session,
                            fan.user_id,
                            Money(amount, currency),
                            reference=f"dev-funding:{fan.user_id}:{currency}",
                        )
    finally:
        await engine.dispose()
    return list(DEMO_USERS)


DEV_KEY_LABEL = "hub dev"


async def seed_key(runtime: Runtime) -> str:
    """A fresh API key of the default app for this `hub dev` run (publish, read, admin): its
    secret can only be shown when it is made, so the previous run's key is revoked."""
    engine = make_engine(runtime.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessions(engine)) as uow:
            for key in await list_keys(uow.session, DEFAULT_APP):
                if key.label == DEV_KEY_LABEL and key.revoked_at is None:
                    await revoke_key(uow.session, DEFAULT_APP, key.id)
            scopes = (Scope.PUBLISH, Scope.READ, Scope.ADMIN)
            _, secret = await create_key(uow.session, DEFAULT_APP, scopes, DEV_KEY_LABEL)
    finally:
        await engine.dispose()
    return secret
