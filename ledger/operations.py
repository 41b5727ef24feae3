"""Housekeeping of the books: retention of idempotency keys and event history, the record of
jobs that failed for good, and reconciliation runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.checks import run_checks
from ledger.errors import FailedJobAlreadyRetried, UnknownFailedJob
from ledger.schema import failed_jobs, reconciliations


async def expire_idempotency_keys(session: AsyncSession, older_than_hours: int) -> int:
    """Forget up to 10,000 keys older than the given age (never less than 24 hours: a client
    retrying within a day must get its saved response, not a second execution)."""
    hours = max(24, older_than_hours)
    result = await session.execute(
        text(
            "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
            "WHERE created_at < now() - make_interval(hours => :hours) LIMIT 10000)"
        ),
        {"hours": hours},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def prune_events(
    session: AsyncSession, *, older_than_hours: int, keep_last: int, limit: int = 10_000
) -> int:
    """Delete published events older than `older_than_hours` that are also beyond each user's
    last `keep_last`: what recovery no longer promises. Recovery answers `recovered: false`
    past it. Unpublished events are never deleted."""
    result = await session.execute(
        text(
            """
            DELETE FROM events e
            WHERE e.id IN (
                SELECT old.id FROM events old
                JOIN users u ON u.id = old.user_id
                WHERE old.occurred_at < now() - make_interval(hours => :hours)
                  AND old.published_at IS NOT NULL
                  AND old.seq <= u.event_seq - :keep
                ORDER BY old.id
                LIMIT :limit
            )
            """
        ),
        {"hours": older_than_hours, "keep": keep_last, "limit": limit},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def record_failed_job(
    session: AsyncSession, job: str, job_id: str | None, args: Sequence[Any], error: str, tries: int
) -> None:
    await session.execute(
        failed_jobs.insert().values(
            job=job, job_id=job_id, args=list(args), error=error[:2000], tries=tries
        )
    )


def _failed_job(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "job": row.job,
        "job_id": row.job_id,
        "args": row.args,
        "error": row.error,
        "tries": row.tries,
        "failed_at": row.failed_at.isoformat(),
        "retried_at": row.retried_at.isoformat() if row.retried_at else None,
        "retried_by": row.retried_by,
        "retry_job_id": row.retry_job_id,
    }


async def list_failed_jobs(session: AsyncSession, limit: int = 100) -> list[dict[str, Any]]:
    rows = await session.execute(select(failed_jobs).order_by(failed_jobs.c.id.desc()).limit(limit))
    return [_failed_job(row) for row in rows]


async def unretried_failed_jobs(session: AsyncSession, limit: int = 1_000) -> list[int]:
    """Ids of the dead-letter entries not retried yet, oldest first."""
    rows = await session.scalars(
        select(failed_jobs.c.id)
        .where(failed_jobs.c.retried_at.is_(None))
        .order_by(failed_jobs.c.id)
        .limit(limit)
    )
    return list(rows)


async def claim_failed_job(session: AsyncSession, failed_id: int) -> dict[str, Any]:
    """Lock a dead-letter entry for its one retry, until the transaction ends.

    Raises UnknownFailedJob, or FailedJobAlreadyRetried once `mark_failed_job_retried` has
    committed for it: two concurrent retries of one entry wait on the lock, and the second
    sees the first's mark.
    """
    row = (
        await session.execute(
            select(failed_jobs).where(failed_jobs.c.id == failed_id).with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise UnknownFailedJob(f"no failed job {failed_id}", param="failed_id")
    if row.retried_at is not None:
        raise FailedJobAlreadyRetried(
            f"failed job {failed_id} was retried at {row.retried_at.isoformat()} "
            f"as {row.retry_job_id}"
        )
    return _failed_job(row)


async def mark_failed_job_retried(
    session: AsyncSession, failed_id: int, retry_job_id: str, retried_by: str
) -> dict[str, Any]:
    row = (
        await session.execute(
            update(failed_jobs)
            .where(failed_jobs.c.id == failed_id)
            .values(retried_at=func.now(), retried_by=retried_by, retry_job_id=retry_job_id)
            .returning(*failed_jobs.c)
        )
    ).one()
    return _failed_job(row)


async def reconcile(session: AsyncSession) -> dict[str, Any]:
    """Run the ledger's invariant checks and keep the outcome; returns the report."""
    run_id = await session.scalar(
        reconciliations.insert().values(report={}).returning(reconciliations.c.id)
    )
    violations = await run_checks(session)
    # Through JSON once: the offending rows may hold numbers PostgreSQL returned as Decimal.
    report = json.loads(
        json.dumps(
            {"violations": [{"check": v.check, "rows": v.rows} for v in violations]}, default=str
        )
    )
    await session.execute(
        update(reconciliations)
        .where(reconciliations.c.id == run_id)
        .values(finished_at=func.now(), ok=not violations, report=report)
    )
    return {"id": run_id, "ok": not violations, **report}


async def last_reconciliation(session: AsyncSession) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(reconciliations)
            .where(reconciliations.c.finished_at.is_not(None))
            .order_by(reconciliations.c.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return {
        "id": row.id,
        "finished_at": row.finished_at.isoformat(),
        "ok": row.ok,
        "report": row.report,
    }
