"""receipts.issue: record the receipt of a committed tip (safe to run any number of times)."""

from __future__ import annotations

import logging
from typing import Any

import aiosmtplib
from arq import Retry
from arq.connections import ArqRedis

from jobs import mail
from jobs.mail import SmtpConfig
from ledger.db import unit_of_work
from ledger.receipts import claim_unsent, issue_receipt, mark_emailed

log = logging.getLogger(__name__)

NAME = "receipts.issue"


async def issue(ctx: dict[str, Any], transfer_id: int) -> str | None:
    """Record the receipt, then email it to the payer when SMTP is set up and the payer's token
    carried an email. Both steps are idempotent: a retry issues nothing new and sends only
    what was not marked sent (a crash between sending and marking may send it twice)."""
    async with unit_of_work(ctx["sessions"]) as uow:
        number = await issue_receipt(uow.session, transfer_id)
    log.info("receipt %s for transfer %s", number or "already issued", transfer_id)
    smtp: SmtpConfig | None = ctx.get("smtp")
    if smtp is not None:
        async with unit_of_work(ctx["sessions"]) as uow:
            receipt = await claim_unsent(uow.session, transfer_id)
            if receipt is not None:
                try:
                    await mail.send(smtp, mail.receipt_message(receipt, smtp.sender))
                except (aiosmtplib.SMTPException, OSError) as exc:
                    log.warning("receipt email for transfer %s failed: %s", transfer_id, exc)
                    raise Retry(defer=ctx.get("job_try", 1) * 5) from exc
                await mark_emailed(uow.session, receipt.id)
    return number


async def enqueue(pool: ArqRedis, transfer_id: int) -> None:
    """Queue the receipt of `transfer_id`; the job id makes a repeated enqueue a no-op."""
    await pool.enqueue_job(NAME, transfer_id, _job_id=f"{NAME}:{transfer_id}")
