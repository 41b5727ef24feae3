"""The dead-letter list: follow-up jobs that failed for good are recorded in failed_jobs, and an
operator may retry an entry once (`hub jobs retry`, POST /api/v1/admin/jobs/failed/{id}/retry)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import unit_of_work
from ledger.errors import FailedJobNotRetriable
from ledger.operations import claim_failed_job, mark_failed_job_retried, record_failed_job

log = logging.getLogger(__name__)

Job = Callable[..., Awaitable[Any]]


def dead_lettered(name: str, job: Job, max_tries: int) -> Job:
    """Record a job in failed_jobs when it fails for good: an error (arq does not retry it),
    or a Retry on its last try. The failure still reaches arq as before."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        try:
            return await job(ctx, *args)
        except Exception as exc:
            tries = int(ctx.get("job_try", 1))
            if not isinstance(exc, Retry) or tries >= max_tries:
                cause = exc.__cause__ if isinstance(exc, Retry) and exc.__cause__ else exc
                log.error("job %s failed for good after %d tries: %s", name, tries, cause)
                async with unit_of_work(ctx["sessions"]) as uow:
                    await record_failed_job(
                        uow.session, name, ctx.get("job_id"), args, repr(cause), tries
                    )
            raise

    return run


def retry_job_id(job: str, failed_id: int) -> str:
    """One job id per entry: arq ignores a second enqueue under it."""
    return f"{job}:retry:{failed_id}"


async def retry(
    sessions: async_sessionmaker[AsyncSession], pool: ArqRedis, failed_id: int, retried_by: str
) -> dict[str, Any]:
    """Enqueue the entry's job again, with its arguments and all its tries, and mark the entry
    retried; returns the marked entry. Each entry is retried once (FailedJobAlreadyRetried).

    The enqueue is made while the entry's row is locked, before the mark commits: if Redis
    refuses it, nothing is marked and the operator can try again. If the commit fails after
    the enqueue, a later retry enqueues under the same job id, which arq ignores while the
    first is queued or its result kept. The job never reads failed_jobs, so it may start
    before the mark commits; jobs are idempotent, so running again is safe.
    """
    from jobs.worker import JOB_NAMES  # the worker imports this module

    async with unit_of_work(sessions) as uow:
        failed = await claim_failed_job(uow.session, failed_id)
        if failed["job"] not in JOB_NAMES:
            raise FailedJobNotRetriable(
                f"failed job {failed_id} is a {failed['job']} job, which this worker does not run"
            )
        job_id = retry_job_id(failed["job"], failed_id)
        await pool.enqueue_job(failed["job"], *failed["args"], _job_id=job_id)
        marked = await mark_failed_job_retried(uow.session, failed_id, job_id, retried_by)
    log.info("failed job %s (%s) retried as %s by %s", failed_id, failed["job"], job_id, retried_by)
    return marked
