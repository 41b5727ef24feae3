"""push.tip_alert: a creator's tip alert by Web Push (RFC 8030/8291/8292) when no page of theirs
is open, enqueued once per committed tip.received event (safe to run any number of times)."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from arq import Retry
from arq.connections import ArqRedis
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher

from ledger.db import unit_of_work
from ledger.events import Event
from ledger.push import PushSubscription, forget_endpoint, list_subscriptions, tip_alert
from realtime.presence import Presence, user_key

log = logging.getLogger(__name__)

NAME = "push.tip_alert"
MAX_TRIES = 5
TTL_SECONDS = 3600  # a push service keeps an undelivered alert this long
ALERT_URL = "/app/creator"
_SENT_KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class PushConfig:
    """HUB_VAPID_PRIVATE_KEY (parsed), HUB_VAPID_SUBJECT and HUB_PUSH_ENDPOINT_HOSTS."""

    private_key: ec.EllipticCurvePrivateKey
    subject: str
    endpoint_hosts: tuple[str, ...]


_UNSENDABLE = re.compile(r"[\s\x00-\x1f\x7f]")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listed(host: str, hosts: Sequence[str]) -> bool:
    return any(
        host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern
        for pattern in hosts
    )


def endpoint_malformed(endpoint: str) -> str | None:
    """Why `endpoint` can never be a push endpoint, or None. A URL with a space, tab, line
    break or other control character is refused here: urlsplit strips some of them silently,
    and the HTTP client then refuses the URL on every send."""
    if _UNSENDABLE.search(endpoint):
        return "must not contain spaces or control characters"
    try:
        url = urlsplit(endpoint)
        url.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return "is not a URL"
    if url.scheme not in ("https", "http") or not (url.hostname or "").rstrip("."):
        return "must be an https URL"
    if url.username is not None or url.password is not None:
        return "must not carry a user or password"
    return None


def endpoint_problem(endpoint: str, hosts: Sequence[str]) -> str | None:
    """Why the hub will not POST to `endpoint`, or None if it will.

    An SSRF guard: a subscription is a URL that any signed-in user chooses, and the workers POST
    to it. Only https to a listed push service is allowed; http only to a loopback IP that is
    listed itself (how tests point the hub at a push service on 127.0.0.1)."""
    malformed = endpoint_malformed(endpoint)
    if malformed is not None:
        return malformed
    url = urlsplit(endpoint)
    host = (url.hostname or "").rstrip(".")
    if not _listed(host, hosts):
        return f"host {host} is not an allowed push service (HUB_PUSH_ENDPOINT_HOSTS)"
    if url.scheme == "http" and not is_loopback(host):
        return "must be an https URL"
    return None


def tip_ids(events: Iterable[Event]) -> list[int]:
    return [int(event.data["tip_id"]) for event in events if event.type == "tip.received"]


async def enqueue_tip_alert(pool: ArqRedis, tip_id: int) -> None:
    """Queue the alert of committed tip `tip_id` (the outbox does, jobs.outbox); the job id
    makes a repeated enqueue a no-op."""
    await pool.enqueue_job(NAME, tip_id, _job_id=f"{NAME}:{tip_id}")


def alert_payload(
    tip_id: int, name: str | None, amount: int, currency: str, message: str | None
) -> bytes:
    """What the service worker receives (docs/events.md, "Web Push")."""
    return json.dumps(
        {
            "type": "tip.received",
            "tip": {
                "id": tip_id,
                "name": name or "Someone",
                "amount": amount,
                "currency": currency,
                "message": message,
            },
            "url": ALERT_URL,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def _origin(endpoint: str) -> str:
    url = urlsplit(endpoint)
    default = {"https": 443, "http": 80}[url.scheme]
    port = f":{url.port}" if url.port not in (None, default) else ""
    return f"{url.scheme}://{url.hostname}{port}"


def _request(
    config: PushConfig, vapid: Vapid02, subscription: PushSubscription, payload: bytes
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one push: aes128gcm-encrypted for the browser's keys (RFC 8291),
    signed for the push service's origin (RFC 8292)."""
    pusher = WebPusher(
        {
            "endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
    )
    body: bytes = pusher.encode(payload, "aes128gcm")["body"]
    claims = {
        "aud": _origin(subscription.endpoint),
        "sub": config.subject,
        "exp": int(time.time()) + 12 * 3600,  # RFC 8292: at most 24 hours ahead
    }
    headers: dict[str, str] = dict(vapid.sign(claims))
    headers.update(
        {
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(TTL_SECONDS),
            "Urgency": "high",
        }
    )
    return headers, body


async def send_tip_alert(ctx: dict[str, Any], tip_id: int) -> dict[str, Any]:
    """Send the tip's alert to each of the creator's subscriptions, unless push is off or the
    creator has a page open (a live socket: the page shows the tip itself).

    Runs at least once: subscriptions that took the alert are remembered in Redis for a day
    and skipped by a retry. 404/410 (the browser unsubscribed) deletes the subscription;
    429, 5xx and network errors retry the job (bounded); any other 4xx is logged and dropped."""
    config: PushConfig | None = ctx.get("push")
    if config is None:
        return {"skipped": "push disabled"}
    async with ctx["sessions"]() as session:
        alert = await tip_alert(session, tip_id)
        subscriptions = [] if alert is None else await list_subscriptions(session, alert.creator_id)
    if alert is None:
        return {"skipped": "no such tip"}
    if not subscriptions:
        return {"skipped": "no subscriptions"}
    redis: ArqRedis = ctx["redis"]
    if await Presence(redis).count(user_key(alert.creator_id)) > 0:
        return {"skipped": "creator online"}
    sent_key = f"push:sent:{tip_id}"
    already = {int(member) for member in await redis.smembers(sent_key)}  # type: ignore[misc]
    payload = alert_payload(
        alert.tip_id, alert.fan_name, alert.amount, alert.currency, alert.message
    )
    vapid = Vapid02(config.private_key, conf={"no-strict": True})
    http: httpx.AsyncClient = ctx["push_http"]
    outcome = {"sent": 0, "gone": 0, "dropped": 0, "retry": 0}
    retry_after = 0
    for subscription in subscriptions:
        if subscription.id in already:
            continue
        # A malformed endpoint never works: it is forgotten. One on a host that is no longer
        # listed is kept (the operator may list it again) and skipped.
        problem = endpoint_problem(subscription.endpoint, config.endpoint_hosts)
        forget = endpoint_malformed(subscription.endpoint) is not None
        if problem is None:
            headers, body = _request(config, vapid, subscription, payload)
            try:
                response = await http.post(subscription.endpoint, content=body, headers=headers)
            except httpx.InvalidURL as exc:  # not an HTTPError, and it fails every retry
                problem, forget = f"is refused by the HTTP client ({exc})", True
            except httpx.HTTPError as exc:
                log.warning("push to subscription %s failed: %s", subscription.id, exc)
                outcome["retry"] += 1
                continue
        if problem is not None:
            if forget:
                async with unit_of_work(ctx["sessions"]) as uow:
                    await forget_endpoint(uow.session, subscription.endpoint)
            log.warning("push subscription %s skipped: endpoint %s", subscription.id, problem)
            outcome["dropped"] += 1
            continue
        status = response.status_code
        if status < 300:
            await redis.sadd(sent_key, subscription.id)  # type: ignore[misc]
            await redis.expire(sent_key, _SENT_KEEP_SECONDS)
            outcome["sent"] += 1
        elif status in (404, 410):
            async with unit_of_work(ctx["sessions"]) as uow:
                await forget_endpoint(uow.session, subscription.endpoint)
            log.info("push subscription %s is gone (%s): deleted", subscription.id, status)
            outcome["gone"] += 1
        elif status == 429 or status >= 500:
            log.warning("push service answered %s for subscription %s", status, subscription.id)
            retry_after = max(retry_after, _seconds(response.headers.get("retry-after")))
            outcome["retry"] += 1
        else:
            log.warning(
                "push to subscription %s refused with %s: %s",
                subscription.id,
                status,
                response.text[:200],
            )
            outcome["dropped"] += 1
    if outcome["retry"]:
        tries = int(ctx.get("job_try", 1))
        raise Retry(defer=min(max(retry_after, tries * 2), 60))
    log.info("push alert for tip %s: %s", tip_id, outcome)
    return outcome


def _seconds(value: str | None) -> int:
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0  # an HTTP date: the job's own backoff applies
