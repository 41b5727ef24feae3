"""Sending outbound webhooks: the worker's background loop over due deliveries.

Each round claims the due heads of the (endpoint, user) queues (ledger.webhooks: the lowest
pending seq of each, leased to this worker) and works each queue in seq order: a delivery is
POSTed, signed the Standard Webhooks way, and its outcome recorded; after a success the queue's
next delivery is claimed in the same transaction and sent, up to RUN_LENGTH of them, so a busy
user's events go out at the receiver's pace, not one per round. A failure is retried on the
schedule (about three days); the queue waits for it (nothing after it goes first). An endpoint
whose every attempt failed for `disable_after` is disabled, and the app's admins get a
`webhook_endpoint.disabled` event.

`webhook-id` is `evt_<event id>`: the same on every attempt and redelivery, for the receiver
to drop a copy (delivery is at least once). During a secret's rotation overlap,
`webhook-signature` carries a signature with each secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ledger import webhooks
from ledger.db import unit_of_work
from ledger.events import record_events
from providers.signatures import sign_standard

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
QUEUES_PER_ROUND = 64  # queue heads claimed at once
RUN_LENGTH = 50  # deliveries of one queue sent in a row before it goes back to the pool
LEASE_SECONDS = 60.0  # a claimed delivery's lease: a worker that dies lets it go then
# Seconds before each retry: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then 12 h
# five times: 15 attempts over about 3.2 days, each delay ±10 % so that endpoints that failed
# together do not come back together.
RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, *[43200] * 5)
DISABLE_AFTER = 3 * 24 * 3600.0
USER_AGENT = "Hub-Webhooks/1"


@dataclass(frozen=True)
class WebhookConfig:
    """How the worker sends: the retry schedule, when a failing endpoint is disabled, and
    whether endpoints may be private addresses (development and tests only)."""

    retry_schedule: tuple[float, ...] = RETRY_SCHEDULE
    disable_after: float = DISABLE_AFTER
    allow_private: bool = False
    timeout: float = 10.0
    jitter: float = 0.1


class Refused(Exception):
    """The hub will not send to this URL."""


def url_problem(url: str, allow_private: bool) -> str | None:
    """Why an endpoint URL is unacceptable as given (before any lookup), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return "is not a URL"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "must not contain spaces or control characters"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password"
    if allow_private:
        return None
    if parts.scheme != "https":
        return "must be an https URL"
    host = parts.hostname.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "must not be a private or loopback address"
    try:
        if not ipaddress.ip_address(host).is_global:
            return "must not be a private or loopback address"
    except ValueError:
        pass  # a name: its addresses are checked when it is sent to
    return None


# A name's addresses, as last resolved: (addresses, monotonic expiry), kept RESOLVED_TTL
# seconds. Resolving runs in a thread of the loop's executor; for every delivery it cost a
# quarter of the worker's CPU (docs/benchmarks.md). What is kept is what was checked, and the
# request still goes to the checked address.
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVED_TTL = 30.0
_RESOLVED: dict[tuple[str, int], tuple[list[IPAddress], float]] = {}
_RESOLVED_MAX = 10_000


async def _addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` names: itself when it is one, else a lookup (kept a while)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    kept = _RESOLVED.get((host, port))
    if kept is not None and kept[1] > time.monotonic():
        return kept[0]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if len(_RESOLVED) >= _RESOLVED_MAX:
        _RESOLVED.clear()
    _RESOLVED[(host, port)] = (addresses, time.monotonic() + RESOLVED_TTL)
    return addresses


async def _pinned(url: str, allow_private: bool) -> tuple[str, str, dict[str, Any]]:
    """The SSRF guard at send time: the name is resolved (at most every RESOLVED_TTL
    seconds), every address it has must be public (unless allowed), and the request goes to
    the address checked, not to a second lookup (DNS rebinding): the URL with that address,
    the name in `Host` and, over TLS, as the server name the certificate is checked against.
    Returns (url, host header, extensions)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _addresses(host, port)
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    for address in addresses:
        if not allow_private and not address.is_global:
            raise Refused(f"{host} resolves to a private or loopback address ({address})")
    address = addresses[0]
    netloc = f"[{address}]" if address.version == 6 else str(address)
    if parts.port is not None:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, host_header, extensions


def signature_headers(due: webhooks.Due, timestamp: int) -> dict[str, str]:
    msg_id = f"evt_{due.event_id}"
    body = due.payload.encode()
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign_standard(msg_id, timestamp, body, secret) for secret in due.secrets
        ),
    }


async def send(
    client: httpx.AsyncClient, config: WebhookConfig, due: webhooks.Due
) -> webhooks.Outcome:
    """POST one delivery; its outcome, with when to retry."""
    started = time.monotonic()
    status_code: int | None = None
    response_text: str | None = None
    error: str | None = None
    try:
        # one deadline for all of it (a receiver that trickles its answer included): well
        # inside the delivery's lease, so no other worker sends it meanwhile
        async with asyncio.timeout(config.timeout):
            problem = url_problem(due.url, config.allow_private)
            if problem is not None:
                raise Refused(f"the endpoint URL {problem}")
            target, host, extensions = await _pinned(due.url, config.allow_private)
            headers = {**signature_headers(due, int(time.time())), "host": host}
            async with client.stream(
                "POST",
                target,
                content=due.payload.encode(),
                headers=headers,
                extensions=extensions,
            ) as answer:
                status_code = answer.status_code
                kept = bytearray()
                async for chunk in answer.aiter_bytes():
                    kept += chunk
                    if len(kept) >= webhooks.RESPONSE_KEPT:
                        break
                response_text = bytes(kept[: webhooks.RESPONSE_KEPT]).decode(errors="replace")
    except Refused as exc:
        error = str(exc)
    except TimeoutError:
        error = f"no answer within {config.timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    delivered = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not delivered:
        error = f"the endpoint answered {status_code}"
    retry_in = None
    if not delivered and due.attempts < len(config.retry_schedule):
        delay = config.retry_schedule[due.attempts]
        retry_in = delay * random.uniform(1 - config.jitter, 1 + config.jitter)
    return webhooks.Outcome(
        delivery_id=due.id,
        delivered=delivered,
        status_code=status_code,
        response=response_text,
        duration_ms=int((time.monotonic() - started) * 1000),
        error=error,
        retry_in=retry_in,
    )


async def _work_queue(ctx: dict[str, Any], first: webhooks.Due) -> int:
    """Send `first`, then its queue's next ones while they succeed (RUN_LENGTH at most)."""
    config: WebhookConfig = ctx["webhooks"]
    client: httpx.AsyncClient = ctx["webhook_http"]
    due: webhooks.Due | None = first
    sent = 0
    while due is not None and sent < RUN_LENGTH:
        outcome = await send(client, config, due)
        sent += 1
        async with unit_of_work(ctx["sessions"]) as uow:
            endpoint = await webhooks.record_outcome(uow.session, outcome)
            if outcome.delivered and endpoint is not None:
                due = await webhooks.claim_next(
                    uow.session, due.endpoint_id, due.user_id, LEASE_SECONDS
                )
            else:
                due = None
            if endpoint is not None and endpoint[2] is not None:
                await _disable_if_failing(ctx, uow, endpoint[0], config)
    return sent


async def _disable_if_failing(
    ctx: dict[str, Any], uow: Any, endpoint_id: int, config: WebhookConfig
) -> None:
    disabled = await webhooks.disable_if_failing(uow.session, endpoint_id, config.disable_after)
    if disabled is None:
        return
    app_id, url = disabled
    log.warning(
        "webhook endpoint %s (%s) disabled: every delivery failed for days", endpoint_id, url
    )
    admins = await webhooks.app_admins(uow.session, app_id)
    data = {"endpoint_id": endpoint_id, "url": url, "reason": "every delivery failed for days"}
    events = await record_events(
        uow.session, [(admin, "webhook_endpoint.disabled", data) for admin in admins]
    )
    publisher = ctx.get("publisher")
    if events and publisher is not None:
        uow.after_commit(lambda: publisher.publish(events))


async def _claim(ctx: dict[str, Any], limit: int) -> list[webhooks.Due]:
    async with unit_of_work(ctx["sessions"]) as uow:
        return await webhooks.claim_due(uow.session, limit, LEASE_SECONDS)


async def deliver(ctx: dict[str, Any]) -> int:
    """One round (a burst worker's): claim the due queue heads and work the queues together;
    how many were sent."""
    due = await _claim(ctx, QUEUES_PER_ROUND)
    results = await asyncio.gather(
        *(_work_queue(ctx, first) for first in due), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            log.warning("a webhook queue failed: %s", result)
    return sum(result for result in results if isinstance(result, int))


async def deliver_once_for_burst(ctx: dict[str, Any]) -> None:
    """A burst worker's rounds as it starts, until nothing due is left (retries that are not
    due yet wait for a running worker); a failure is logged."""
    try:
        while await deliver(ctx):
            pass
    except Exception as exc:
        log.warning("could not deliver webhooks: %s", exc)


async def run(ctx: dict[str, Any], every: float = POLL_SECONDS) -> None:
    """Deliver forever (the worker's background task): up to QUEUES_PER_ROUND queues worked at
    once, a freed slot claiming the next due head at once, so a slow endpoint holds its own
    queues only. A failure is logged at most once a minute and the next poll tries again."""
    active: set[asyncio.Task[int]] = set()
    warned_at = 0.0

    def finished(task: asyncio.Task[int]) -> None:
        active.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a webhook queue failed: %s", task.exception())

    try:
        while True:
            due: list[webhooks.Due] = []
            free = QUEUES_PER_ROUND - len(active)
            if free > 0:
                try:
                    due = await _claim(ctx, free)
                except Exception as exc:
                    if time.monotonic() - warned_at > 60:
                        warned_at = time.monotonic()
                        log.warning("could not claim webhook deliveries: %s", exc)
            for first in due:
                task = asyncio.create_task(_work_queue(ctx, first))
                active.add(task)
                task.add_done_callback(finished)
            if not due:  # nothing new: wait for a slot to free, or the next poll
                if active:
                    await asyncio.wait(active, timeout=every, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(every)
    finally:
        for task in active:
            task.cancel()
        await asyncio.gather(*active, return_exceptions=True)


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def new_client(config: WebhookConfig) -> httpx.AsyncClient:
    # No redirects: an endpoint's answer must not send the worker elsewhere (SSRF).
    return httpx.AsyncClient(
        timeout=httpx.Timeout(config.timeout, connect=5.0), follow_redirects=False
    )
