"""Periodic housekeeping: arq cron jobs, each unique across workers."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from ledger.db import unit_of_work
from ledger.errors import LedgerError
from ledger.operations import (
    expire_idempotency_keys,
    prune_events,
    reconcile,
)
from ledger.provider_events import EventKind, ProviderEvent
from ledger.schema import payments
from ledger.settlement import apply_event

log = logging.getLogger(__name__)

PENDING_PAYMENT_HOURS = 24


@dataclass(frozen=True)
class Retention:
    """What the housekeeping jobs keep (HUB_IDEMPOTENCY_KEY_RETENTION_HOURS,
    HUB_EVENT_RETENTION_HOURS, HUB_EVENT_RETENTION_COUNT): keys for `idempotency_key_hours`;
    events for `event_hours` and, beyond that, each user's last `event_count`."""

    idempotency_key_hours: int = 48
    event_hours: int = 24
    event_count: int = 1_000


def _retention(ctx: dict[str, Any]) -> Retention:
    retention: Retention = ctx.get("retention") or Retention()
    return retention


MAX_BATCHES = 100  # per run: batches of 10,000, each its own short transaction


async def expire_keys(ctx: dict[str, Any]) -> int:
    hours = _retention(ctx).idempotency_key_hours
    total = 0
    for _ in range(MAX_BATCHES):
        async with unit_of_work(ctx["sessions"]) as uow:
            deleted = await expire_idempotency_keys(uow.session, hours)
        total += deleted
        if deleted < 10_000:
            break
    return total


async def prune_event_history(ctx: dict[str, Any]) -> int:
    retention = _retention(ctx)
    total = 0
    for _ in range(MAX_BATCHES):
        async with unit_of_work(ctx["sessions"]) as uow:
            deleted = await prune_events(
                uow.session,
                older_than_hours=retention.event_hours,
                keep_last=retention.event_count,
            )
        total += deleted
        if deleted < 10_000:
            break
    return total


async def run_reconciliation(ctx: dict[str, Any]) -> dict[str, Any]:
    """Settle pending payments older than a day with their provider, then check the books."""
    settled = await _settle_stale_payments(ctx)
    async with unit_of_work(ctx["sessions"]) as uow:
        report = await reconcile(uow.session)
    if not report["ok"]:
        log.error("reconciliation found violations: %s", report["violations"])
    return {**report, "stale_payments_settled": settled}


async def _settle_stale_payments(ctx: dict[str, Any]) -> int:
    """A payment still pending after PENDING_PAYMENT_HOURS is asked about where the provider
    can say (Paystack's verify); a success is applied through the same path as its webhook,
    anything else fails the payment. A late success webhook still credits it afterwards."""
    async with ctx["sessions"]() as session:
        rows = (
            await session.execute(
                select(payments.c.reference, payments.c.provider)
                .where(
                    payments.c.status == "pending",
                    payments.c.created_at
                    < func.now() - func.make_interval(0, 0, 0, 0, PENDING_PAYMENT_HOURS),
                )
                .limit(100)
            )
        ).all()
    done = 0
    for reference, provider_name in rows:
        provider = await ctx["providers"].get(provider_name)
        verify = getattr(provider, "verify_transaction", None)
        status, data = "unknown", {}
        if verify is not None:
            try:
                data = await verify(reference)
                status = str(data.get("status"))
            except Exception as exc:
                log.warning("could not verify payment %s: %s", reference, exc)
                continue
        kind = EventKind.PAYMENT_SUCCEEDED if status == "success" else EventKind.PAYMENT_FAILED
        event = ProviderEvent(
            provider=provider_name,
            event_id=f"reconciliation:{reference}:{kind.value}",
            type=f"reconciliation.{status}",
            kind=kind,
            reference=reference,
            amount=data.get("amount") if kind is EventKind.PAYMENT_SUCCEEDED else None,
            currency=str(data.get("currency", "")).upper() or None
            if kind is EventKind.PAYMENT_SUCCEEDED
            else None,
            payload={"reason": "expired without an outcome" if status == "unknown" else status},
        )
        try:
            async with unit_of_work(ctx["sessions"]) as uow:
                settled = await apply_event(uow.session, event, "{}")
                publisher = ctx.get("publisher")
                if settled.events and publisher is not None:
                    uow.after_commit(functools.partial(publisher.publish, settled.events))
            done += 1
        except LedgerError as exc:
            log.warning("could not settle stale payment %s: %s", reference, exc)
    return done
