"""Outbound webhooks: an app's endpoints, their deliveries (written by a trigger on `events`,
migration 0019) and every attempt; the worker's claims and outcomes (jobs/webhooks.py)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import LedgerError
from ledger.ids import platform_json

MAX_ENDPOINTS_PER_APP = 20
RESPONSE_KEPT = 1024  # characters of a response body kept with its attempt


class UnknownEndpoint(LedgerError):
    pass


class UnknownDelivery(LedgerError):
    pass


class TooManyEndpoints(LedgerError):
    pass


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    app_id: str
    url: str
    description: str | None
    event_types: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_until: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "app_id": self.app_id,
            "url": self.url,
            "description": self.description,
            "event_types": list(self.event_types),
            "enabled": self.disabled_at is None,
            "created_at": _iso(self.created_at),
            "disabled_at": _iso(self.disabled_at),
            "disabled_reason": self.disabled_reason,
            "failing_since": _iso(self.failing_since),
            "previous_secret_until": _iso(self.previous_secret_until),
        }


_ENDPOINT_COLUMNS = (
    "id, app_id, url, description, event_types, created_at, disabled_at, disabled_reason, "
    "failing_since, previous_secret_until"
)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        app_id=row.app_id,
        url=row.url,
        description=row.description,
        event_types=tuple(row.event_types),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        previous_secret_until=row.previous_secret_until,
    )


async def create_endpoint(
    session: AsyncSession,
    app_id: str,
    url: str,
    event_types: Sequence[str],
    description: str | None,
) -> tuple[Endpoint, str]:
    """A new endpoint of the app and its signing secret."""
    count = await session.scalar(
        text("SELECT count(*) FROM webhook_endpoints WHERE app_id = :app"), {"app": app_id}
    )
    if count is not None and count >= MAX_ENDPOINTS_PER_APP:
        raise TooManyEndpoints(f"an app has at most {MAX_ENDPOINTS_PER_APP} webhook endpoints")
    secret = new_secret()
    row = (
        await session.execute(
            text(
                "INSERT INTO webhook_endpoints (app_id, url, description, event_types, secret) "
                "VALUES (:app, :url, :description, CAST(:types AS text[]), :secret) "
                f" RETURNING {_ENDPOINT_COLUMNS}"
            ),
            {
                "app": app_id,
                "url": url,
                "description": description,
                "types": sorted(set(event_types)),
                "secret": secret,
            },
        )
    ).one()
    return _endpoint(row), secret


async def list_endpoints(session: AsyncSession, app_id: str) -> list[Endpoint]:
    rows = await session.execute(
        text(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = :app ORDER BY id"),
        {"app": app_id},
    )
    return [_endpoint(row) for row in rows]


async def get_endpoint(session: AsyncSession, app_id: str, endpoint_id: int) -> Endpoint:
    row = (
        await session.execute(
            text(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints "
                "WHERE id = :id AND app_id = :app"
            ),
            {"id": endpoint_id, "app": app_id},
        )
    ).one_or_none()
    if row is None:
        raise UnknownEndpoint(f"no webhook endpoint {endpoint_id}", param="endpoint_id")
    return _endpoint(row)


async def update_endpoint(
    session: AsyncSession,
    app_id: str,
    endpoint_id: int,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Endpoint:
    """Change what is given; enabling clears the failure record, disabling says who did."""
    row = (
        await session.execute(
            text(
                """
                UPDATE webhook_endpoints SET
                    url = coalesce(:url, url),
                    event_types = coalesce(CAST(:types AS text[]), event_types),
                    description = coalesce(:description, description),
                    disabled_at = CASE WHEN CAST(:enabled AS boolean) IS NULL THEN disabled_at
                        WHEN CAST(:enabled AS boolean) THEN NULL
                        ELSE coalesce(disabled_at, now()) END,
                    disabled_reason = CASE
                        WHEN CAST(:enabled AS boolean) IS NULL THEN disabled_reason
                        WHEN CAST(:enabled AS boolean) THEN NULL
                        ELSE coalesce(disabled_reason, 'disabled by the app') END,
                    failing_since = CASE
                        WHEN CAST(:enabled AS boolean) THEN NULL ELSE failing_since END
                WHERE id = :id AND app_id = :app
                """
                + f" RETURNING {_ENDPOINT_COLUMNS}"
            ),
            {
                "id": endpoint_id,
                "app": app_id,
                "url": url,
                "types": sorted(set(event_types)) if event_types is not None else None,
                "description": description,
                "enabled": enabled,
            },
        )
    ).one_or_none()
    if row is None:
        raise UnknownEndpoint(f"no webhook endpoint {endpoint_id}", param="endpoint_id")
    return _endpoint(row)


async def delete_endpoint(session: AsyncSession, app_id: str, endpoint_id: int) -> None:
    deleted = await session.scalar(
        text("DELETE FROM webhook_endpoints WHERE id = :id AND app_id = :app RETURNING id"),
        {"id": endpoint_id, "app": app_id},
    )
    if deleted is None:
        raise UnknownEndpoint(f"no webhook endpoint {endpoint_id}", param="endpoint_id")


async def rotate_secret(
    session: AsyncSession, app_id: str, endpoint_id: int, overlap_seconds: int
) -> tuple[Endpoint, str]:
    """A new signing secret; deliveries carry both signatures for `overlap_seconds`."""
    secret = new_secret()
    row = (
        await session.execute(
            text(
                """
                UPDATE webhook_endpoints SET
                    previous_secret = secret, secret = :secret,
                    previous_secret_until = now() + make_interval(secs => :overlap)
                WHERE id = :id AND app_id = :app
                """
                + f" RETURNING {_ENDPOINT_COLUMNS}"
            ),
            {"id": endpoint_id, "app": app_id, "secret": secret, "overlap": overlap_seconds},
        )
    ).one_or_none()
    if row is None:
        raise UnknownEndpoint(f"no webhook endpoint {endpoint_id}", param="endpoint_id")
    return _endpoint(row), secret


# ---- deliveries ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    """A delivery the worker sends now, with what it needs to sign and address it."""

    id: int
    event_id: int
    endpoint_id: int
    user_id: str
    app_id: str
    url: str
    payload: str
    attempts: int
    secrets: tuple[str, ...]  # the current secret, and the previous one during an overlap


_DUE = """
    d.id, d.event_id, d.endpoint_id, d.user_id, ep.app_id, ep.url, d.payload, d.attempts,
    ep.secret,
    CASE WHEN ep.previous_secret_until > now() THEN ep.previous_secret END AS previous_secret
"""

# The head of each (endpoint, user) queue, the lowest pending seq, if it is due and not leased:
# nothing after it is sent before it is done (delivered, or given up). Leased for `lease`
# seconds (a worker that dies lets it go then); SKIP LOCKED and the outer re-check let workers
# share the queues without taking one twice.
_CLAIM = text(
    f"""
    WITH heads AS (
        SELECT DISTINCT ON (d.endpoint_id, d.user_id)
               d.id, d.next_attempt_at, d.leased_until
        FROM webhook_deliveries d
        JOIN webhook_endpoints ep ON ep.id = d.endpoint_id AND ep.disabled_at IS NULL
        WHERE d.status = 'pending'
        ORDER BY d.endpoint_id, d.user_id, d.seq
    ), taken AS (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.id IN (
            SELECT id FROM heads
            WHERE next_attempt_at <= now() AND (leased_until IS NULL OR leased_until < now())
            ORDER BY next_attempt_at LIMIT :limit
        )
          AND d.status = 'pending' AND (d.leased_until IS NULL OR d.leased_until < now())
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => :lease)
    FROM taken, webhook_endpoints ep
    WHERE d.id = taken.id AND ep.id = d.endpoint_id
    RETURNING {_DUE}
    """
)

# The next head of one queue, after its worker recorded the one before (same transaction).
_CLAIM_NEXT = text(
    f"""
    WITH first AS (
        SELECT id FROM webhook_deliveries
        WHERE endpoint_id = :endpoint AND user_id = :user AND status = 'pending'
        ORDER BY seq LIMIT 1
    ), head AS (  -- that one, or none if another transaction holds it: never the one after
        SELECT d.id, d.next_attempt_at, d.leased_until FROM webhook_deliveries d
        JOIN first ON first.id = d.id WHERE d.status = 'pending'
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => :lease)
    FROM head, webhook_endpoints ep
    WHERE d.id = head.id AND ep.id = d.endpoint_id AND ep.disabled_at IS NULL
      AND head.next_attempt_at <= now()
      AND (head.leased_until IS NULL OR head.leased_until < now())
    RETURNING {_DUE}
    """
)


def _due(row: Any) -> Due:
    return Due(
        id=row.id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        user_id=row.user_id,
        app_id=row.app_id,
        url=row.url,
        payload=platform_json(row.payload),  # what the platform is sent: its own user ids
        attempts=row.attempts,
        secrets=tuple(s for s in (row.secret, row.previous_secret) if s),
    )


async def claim_due(session: AsyncSession, limit: int, lease_seconds: float) -> list[Due]:
    """Up to `limit` queue heads that are due, leased to this worker."""
    rows = await session.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})
    return [_due(row) for row in rows]


async def claim_next(
    session: AsyncSession, endpoint_id: int, user_id: str, lease_seconds: float
) -> Due | None:
    row = (
        await session.execute(
            _CLAIM_NEXT, {"endpoint": endpoint_id, "user": user_id, "lease": lease_seconds}
        )
    ).one_or_none()
    return _due(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    delivered: bool
    status_code: int | None
    response: str | None
    duration_ms: int
    error: str | None
    retry_in: float | None  # seconds to the next attempt; None: no more (given up)


_RECORD = text(
    """
    WITH attempt AS (  -- nothing if the endpoint (and its deliveries) was deleted meanwhile
        INSERT INTO webhook_attempts (delivery_id, status_code, response, duration_ms, error)
        SELECT :id, :status_code, :response, :duration_ms, :error
        WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = :id)
    ), delivery AS (
        UPDATE webhook_deliveries SET
            attempts = attempts + 1,
            leased_until = NULL,
            status = CASE WHEN :delivered THEN 'delivered'
                          WHEN CAST(:retry_in AS double precision) IS NULL THEN 'failed'
                          ELSE 'pending' END,
            delivered_at = CASE WHEN :delivered THEN now() ELSE delivered_at END,
            next_attempt_at = CASE
                WHEN :delivered OR CAST(:retry_in AS double precision) IS NULL
                    THEN next_attempt_at
                ELSE now() + make_interval(secs => CAST(:retry_in AS double precision)) END
        WHERE id = :id AND status = 'pending'
        RETURNING endpoint_id
    )
    UPDATE webhook_endpoints ep SET
        failing_since = CASE WHEN :delivered THEN NULL ELSE coalesce(failing_since, now()) END
    FROM delivery WHERE ep.id = delivery.endpoint_id
    RETURNING ep.id, ep.app_id, ep.failing_since
    """
)


async def record_outcome(
    session: AsyncSession, outcome: Outcome
) -> tuple[int, str, datetime | None] | None:
    """Write an attempt and its delivery's next state; returns the endpoint's (id, app_id,
    failing_since), or None if the delivery was no longer pending (redelivered meanwhile)."""
    row = (
        await session.execute(
            _RECORD,
            {
                "id": outcome.delivery_id,
                "delivered": outcome.delivered,
                "status_code": outcome.status_code,
                "response": (outcome.response or "")[:RESPONSE_KEPT] or None,
                "duration_ms": outcome.duration_ms,
                "error": outcome.error,
                "retry_in": outcome.retry_in,
            },
        )
    ).one_or_none()
    return (row.id, row.app_id, row.failing_since) if row is not None else None


_DISABLE = text(
    """
    UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = :reason
    WHERE id = :id AND disabled_at IS NULL AND failing_since IS NOT NULL
      AND failing_since < now() - make_interval(secs => :after)
    RETURNING id, app_id, url
    """
)


async def disable_if_failing(
    session: AsyncSession, endpoint_id: int, after_seconds: float
) -> tuple[str, str] | None:
    """Disable the endpoint if every attempt failed for `after_seconds`: (app_id, url) if so."""
    reason = "every delivery failed for days"
    row = (
        await session.execute(
            _DISABLE, {"id": endpoint_id, "after": after_seconds, "reason": reason}
        )
    ).one_or_none()
    return (row.app_id, row.url) if row is not None else None


async def app_admins(session: AsyncSession, app_id: str) -> list[str]:
    rows = await session.scalars(
        text("SELECT id FROM users WHERE app_id = :app AND role = 'admin' ORDER BY id"),
        {"app": app_id},
    )
    return [str(user) for user in rows]


# ---- the delivery log and redelivery -----------------------------------------------------------


def _delivery(row: Any) -> dict[str, object]:
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "webhook_id": f"evt_{row.event_id}",
        "type": row.type,
        "user_id": row.user_id,
        "seq": row.seq,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at) if row.status == "pending" else None,
        "created_at": _iso(row.created_at),
        "delivered_at": _iso(row.delivered_at),
        "last_attempt": None
        if row.attempted_at is None
        else {
            "at": _iso(row.attempted_at),
            "status_code": row.status_code,
            "response": row.response,
            "duration_ms": row.duration_ms,
            "error": row.error,
        },
    }


_DELIVERY_COLUMNS = """
    d.id, d.endpoint_id, d.event_id, d.type, d.user_id, d.seq, d.status, d.attempts,
    d.next_attempt_at, d.created_at, d.delivered_at,
    a.attempted_at, a.status_code, a.response, a.duration_ms, a.error
"""
_LAST_ATTEMPT = """
    LEFT JOIN LATERAL (
        SELECT attempted_at, status_code, response, duration_ms, error FROM webhook_attempts
        WHERE delivery_id = d.id ORDER BY id DESC LIMIT 1
    ) a ON true
"""


async def list_deliveries(
    session: AsyncSession,
    app_id: str,
    endpoint_id: int,
    status: str | None,
    limit: int,
    before: int | None,
) -> tuple[list[dict[str, object]], int | None]:
    """The endpoint's deliveries, newest first (keyset pages by id)."""
    await get_endpoint(session, app_id, endpoint_id)
    rows = list(
        await session.execute(
            text(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d {_LAST_ATTEMPT} "
                "WHERE d.endpoint_id = :endpoint AND (CAST(:status AS text) IS NULL "
                "OR d.status = :status) AND (CAST(:before AS bigint) IS NULL OR d.id < :before) "
                "ORDER BY d.id DESC LIMIT :limit"
            ),
            {"endpoint": endpoint_id, "status": status, "before": before, "limit": limit + 1},
        )
    )
    cursor = rows[limit - 1].id if len(rows) > limit else None
    return [_delivery(row) for row in rows[:limit]], cursor


async def get_delivery(session: AsyncSession, app_id: str, delivery_id: int) -> dict[str, object]:
    row = (
        await session.execute(
            text(
                f"SELECT {_DELIVERY_COLUMNS}, d.payload FROM webhook_deliveries d "
                f"JOIN webhook_endpoints ep ON ep.id = d.endpoint_id {_LAST_ATTEMPT} "
                "WHERE d.id = :id AND ep.app_id = :app"
            ),
            {"id": delivery_id, "app": app_id},
        )
    ).one_or_none()
    if row is None:
        raise UnknownDelivery(f"no webhook delivery {delivery_id}", param="delivery_id")
    attempts = await session.execute(
        text(
            "SELECT attempted_at, status_code, response, duration_ms, error "
            "FROM webhook_attempts WHERE delivery_id = :id ORDER BY id"
        ),
        {"id": delivery_id},
    )
    return {
        **_delivery(row),
        "payload": platform_json(row.payload),
        "attempt_log": [
            {
                "at": _iso(a.attempted_at),
                "status_code": a.status_code,
                "response": a.response,
                "duration_ms": a.duration_ms,
                "error": a.error,
            }
            for a in attempts
        ],
    }


async def redeliver(session: AsyncSession, app_id: str, delivery_id: int) -> dict[str, object]:
    """Send the delivery again, now, with a fresh round of retries (its attempts stay logged).
    One being sent right now keeps its lease: its outcome is recorded first."""
    found = await session.scalar(
        text(
            """
            UPDATE webhook_deliveries d SET status = 'pending', attempts = 0,
                   next_attempt_at = now()
            FROM webhook_endpoints ep
            WHERE d.id = :id AND ep.id = d.endpoint_id AND ep.app_id = :app
            RETURNING d.id
            """
        ),
        {"id": delivery_id, "app": app_id},
    )
    if found is None:
        raise UnknownDelivery(f"no webhook delivery {delivery_id}", param="delivery_id")
    return await get_delivery(session, app_id, delivery_id)


async def redeliver_since(
    session: AsyncSession, app_id: str, endpoint_id: int, since: datetime
) -> int:
    """Every delivery of the endpoint made since `since`, sent again (each user's in order)."""
    await get_endpoint(session, app_id, endpoint_id)
    count = await session.scalar(
        text(
            """
            WITH again AS (
                UPDATE webhook_deliveries SET status = 'pending', attempts = 0,
                       next_attempt_at = now()
                WHERE endpoint_id = :endpoint AND created_at >= :since
                RETURNING 1
            )
            SELECT count(*) FROM again
            """
        ),
        {"endpoint": endpoint_id, "since": since},
    )
    return int(count or 0)
