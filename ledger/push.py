"""Web Push subscriptions (one row per browser endpoint) and what a tip's push alert says.

A browser's endpoint belongs to one user at a time: saving it again, for the same user or
another one signed in on that browser, moves it and renews its keys. A user keeps at most
MAX_PER_USER subscriptions; saving one more drops their oldest (a browser that stopped
renewing is the likeliest to be dead, and refusing would break the newest device instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import LedgerError
from ledger.schema import push_subscriptions

MAX_PER_USER = 10


class UnknownPushSubscription(LedgerError):
    pass


@dataclass(frozen=True, slots=True)
class PushSubscription:
    id: int
    user_id: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class TipAlert:
    tip_id: int
    creator_id: str
    fan_name: str | None
    amount: int
    currency: str
    message: str | None


# Saves of one user are serialised by a transaction-scoped advisory lock (not the user's row,
# which every tip to a popular creator locks), so concurrent saves never leave more than
# MAX_PER_USER behind.
_LOCK_USER = text(
    "SELECT pg_advisory_xact_lock(hashtext('push_subscriptions:' || CAST(:user_id AS text)))"
)

_UPSERT = text(
    """
    INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)
    VALUES (:user_id, :endpoint, :p256dh, :auth)
    ON CONFLICT (endpoint) DO UPDATE
        SET user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth,
            created_at = now()
    RETURNING id, user_id, endpoint, p256dh, auth, created_at
    """
)

_TRIM = text(
    """
    DELETE FROM push_subscriptions WHERE user_id = :user_id AND id NOT IN (
        SELECT id FROM push_subscriptions WHERE user_id = :user_id
        ORDER BY created_at DESC, id DESC LIMIT :keep
    )
    """
)

_TIP_ALERT = text(
    """
    SELECT t.transfer_id, t.creator_id, fan.display_name AS fan_name, t.amount, t.currency,
           t.message
    FROM tips t JOIN users fan ON fan.id = t.fan_id
    WHERE t.transfer_id = :transfer_id
    """
).bindparams(bindparam("transfer_id", type_=BigInteger))


async def save_subscription(
    session: AsyncSession, user_id: str, endpoint: str, p256dh: str, auth: str
) -> PushSubscription:
    """Save the browser's subscription for `user_id` (moving the endpoint from whoever had it),
    then drop the user's oldest beyond MAX_PER_USER. The keys are stored as given (base64url);
    the caller validated them."""
    await session.execute(_LOCK_USER, {"user_id": user_id})
    row = (
        await session.execute(
            _UPSERT, {"user_id": user_id, "endpoint": endpoint, "p256dh": p256dh, "auth": auth}
        )
    ).one()
    await session.execute(_TRIM, {"user_id": user_id, "keep": MAX_PER_USER})
    return _subscription(row)


async def delete_subscription(session: AsyncSession, user_id: str, endpoint: str) -> None:
    """Delete the caller's own subscription; UnknownPushSubscription if they have none there."""
    result = await session.execute(
        delete(push_subscriptions)
        .where(push_subscriptions.c.user_id == user_id, push_subscriptions.c.endpoint == endpoint)
        .returning(push_subscriptions.c.id)
    )
    if result.first() is None:
        raise UnknownPushSubscription(
            "no push subscription of yours has this endpoint", param="endpoint"
        )


async def list_subscriptions(session: AsyncSession, user_id: str) -> list[PushSubscription]:
    rows = await session.execute(
        select(push_subscriptions)
        .where(push_subscriptions.c.user_id == user_id)
        .order_by(push_subscriptions.c.created_at, push_subscriptions.c.id)
    )
    return [_subscription(row) for row in rows]


async def forget_endpoint(session: AsyncSession, endpoint: str) -> bool:
    """Delete the subscription at `endpoint`, whoever's it is: the push service said it is gone
    (404/410). False if there was none."""
    result = await session.execute(
        delete(push_subscriptions)
        .where(push_subscriptions.c.endpoint == endpoint)
        .returning(push_subscriptions.c.id)
    )
    return result.first() is not None


async def tip_alert(session: AsyncSession, transfer_id: int) -> TipAlert | None:
    """What a creator's push alert says about the tip `transfer_id`; None if it is no tip."""
    row = (await session.execute(_TIP_ALERT, {"transfer_id": transfer_id})).one_or_none()
    if row is None:
        return None
    return TipAlert(
        tip_id=row.transfer_id,
        creator_id=row.creator_id,
        fan_name=row.fan_name,
        amount=row.amount,
        currency=row.currency,
        message=row.message,
    )


def _subscription(row: Any) -> PushSubscription:
    return PushSubscription(
        id=row.id,
        user_id=row.user_id,
        endpoint=row.endpoint,
        p256dh=row.p256dh,
        auth=row.auth,
        created_at=row.created_at,
    )
