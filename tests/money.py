"""Helpers for the money tests: drive the hub and the sandbox through their HTTP APIs."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.schema import accounts, webhook_events
from tests.conftest import auth


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def wallet(http: httpx.AsyncClient, user: str, role: str = "fan", currency: str = "NGN"):
    response = await http.get("/api/v1/wallet", headers=auth(user, role))
    assert response.status_code == 200, response.text
    by_kind = {(b["kind"], b["currency"]): b for b in response.json()["balances"]}
    return by_kind


async def balance(http: httpx.AsyncClient, user: str, role: str = "fan", kind: str = "wallet"):
    return (await wallet(http, user, role))[(kind, "NGN")]["balance"]


async def start_topup(
    http: httpx.AsyncClient, user: str, amount: int, provider: str = "paystack"
) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/payments",
        json={"amount": amount, "currency": "NGN", "provider": provider},
        headers={**auth(user, "fan"), **key()},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def deliver(sandbox: httpx.AsyncClient, path: str, **control: Any) -> dict[str, Any]:
    response = await sandbox.post(f"/_sandbox/{path}/deliver", json=control)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def topup(
    http: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    user: str,
    amount: int,
    provider: str = "paystack",
) -> dict[str, Any]:
    """A completed top-up: the payment after its success webhook was applied."""
    payment = await start_topup(http, user, amount, provider)
    result = await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")
    assert result["statuses"] == [200], result
    return payment


async def clearing_balance(
    sessions: async_sessionmaker[AsyncSession], provider: str, currency: str = "NGN"
) -> int:
    async with sessions() as session:
        value = await session.scalar(
            select(accounts.c.balance).where(
                accounts.c.kind == "provider_clearing",
                accounts.c.provider == provider,
                accounts.c.currency == currency,
            )
        )
    return int(value or 0)


async def inbox(sessions: async_sessionmaker[AsyncSession], provider: str, event_id: str):
    async with sessions() as session:
        return (
            await session.execute(
                select(webhook_events).where(
                    webhook_events.c.provider == provider, webhook_events.c.event_id == event_id
                )
            )
        ).all()
