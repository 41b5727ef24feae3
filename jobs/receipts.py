"""receipts.issue: record the receipt of a committed tip (safe to run any number of times)."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis

from ledger.db import unit_of_work
from ledger.receipts import issue_receipt

log = logging.getLogger(__name__)

NAME = "receipts.issue"


async def issue(ctx: dict[str, Any], transfer_id: int) -> str | None:
    async with unit_of_work(ctx["sessions"]) as uow:
        number = await issue_receipt(uow.session, transfer_id)
    log.info("receipt %s for transfer %s", number or "already issued", transfer_id)
    return number


async def enqueue(pool: ArqRedis, transfer_id: int) -> None:
    """Queue the receipt of `transfer_id`; the job id makes a repeated enqueue a no-op."""
    await pool.enqueue_job(NAME, transfer_id, _job_id=f"{NAME}:{transfer_id}")
