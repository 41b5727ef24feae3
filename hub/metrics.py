"""Prometheus metrics at /metrics.

Metrics are prometheus-client objects, so with several uvicorn workers (HUB_WORKERS > 1) each
worker writes them to files in the multiprocess directory and any worker's /metrics reports the
sum (counters, histograms, connection gauges) or the max (cluster-wide samples). The realtime and
ledger objects keep plain counters of their own (they import no metrics library); a sampler turns
them into these series every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import func, select, text
from starlette.requests import Request
from starlette.responses import Response

from hub.auth import AuthError, bearer
from hub.openapi import operation
from ledger.operations import last_reconciliation
from ledger.payments import count_unconfirmed
from ledger.schema import failed_jobs

if TYPE_CHECKING:
    from hub.state import Hub
    from realtime.bus import Frame

log = logging.getLogger(__name__)

HTTP_DURATION = Histogram(
    "hub_http_request_duration_seconds",
    "HTTP request duration by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POSTINGS = Counter("hub_postings", "Money movements committed, by kind", ["kind"])
WEBHOOKS = Counter(
    "hub_webhooks", "Webhook deliveries by provider and outcome", ["provider", "outcome"]
)
RATE_LIMITED = Counter("hub_rate_limited", "Requests refused by a rate limit", ["scope"])
DELIVERY_LAG = Histogram(
    "hub_event_delivery_lag_seconds",
    "From the event's transaction to its emit to a socket",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30),
)
SOCKETS = Gauge("hub_sockets_connected", "Sockets connected", multiprocess_mode="livesum")
POOL_IN_USE = Gauge(
    "hub_db_pool_in_use", "Database connections checked out", multiprocess_mode="livesum"
)
BUS_SUBSCRIBED = Gauge(
    "hub_event_bus_subscribed",
    "1 while the process is subscribed to the event bus on Redis",
    multiprocess_mode="livemin",
)
BACKLOG = Gauge("hub_events_unpublished", "Events not yet published", multiprocess_mode="max")
QUEUE_DEPTH = Gauge("hub_queue_depth", "Jobs waiting in the arq queue", multiprocess_mode="max")
OUTBOX_ROWS = Gauge(
    "hub_outbox_rows", "Follow-ups written with the money, not yet drained", multiprocess_mode="max"
)
OUTBOX_OLDEST = Gauge(
    "hub_outbox_oldest_seconds",
    "Age of the oldest follow-up in the outbox (0 when it is empty)",
    multiprocess_mode="max",
)
JOBS_FAILED = Gauge("hub_jobs_failed", "Jobs that failed for good", multiprocess_mode="max")
# Labelled (scope="cluster") so that they are absent until the first reconciliation is read: an
# unlabelled gauge is exported as 0 from the start, which would read as "the books are wrong"
# and as a reconciliation stale since 1970 on every fresh deployment.
RECONCILIATION_OK = Gauge(
    "hub_reconciliation_ok",
    "1 if the last reconciliation found the books right, 0 if not (absent before the first)",
    ["scope"],
    multiprocess_mode="min",
)
RECONCILIATION_FINISHED = Gauge(
    "hub_reconciliation_last_finished_timestamp_seconds",
    "When the last reconciliation finished, in Unix time (absent before the first)",
    ["scope"],
    multiprocess_mode="max",
)
PAYMENTS_UNCONFIRMED = Gauge(
    "hub_payments_unconfirmed",
    "Succeeded payments that their provider's API did not confirm (payments.verify)",
    multiprocess_mode="max",
)
COUNTERS = {
    "bus_lost": Counter("hub_event_bus_subscription_lost", "Event bus subscriptions lost"),
    "sent": Counter("hub_events_sent", "Events sent to sockets"),
    "gap_fills": Counter("hub_event_gap_fills", "Connection gaps filled from the event log"),
    "republished": Counter("hub_events_republished", "Events republished by the sweeper"),
    "slow": Counter("hub_socket_slow_consumers", "Sockets disconnected for not reading"),
    "recoveries": Counter(
        "hub_socket_recoveries", "Connected sockets whose position was read from the event log"
    ),
    "fee_hits": Counter("hub_fee_cache_hits", "Platform fee reads served by the cache"),
    "fee_misses": Counter("hub_fee_cache_misses", "Platform fee reads that missed the cache"),
}


GC_PAUSE = Histogram(
    "hub_gc_pause_seconds",
    "Garbage collections of this process, by how long each held it (every request and socket)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
GC_PAUSE_MAX = Gauge(
    "hub_gc_pause_max_seconds",
    "The longest garbage collection pause of a process since it started",
    multiprocess_mode="max",
)
_collector_watched = False


def watch_collector() -> None:
    """Time every garbage collection of this process (gc.callbacks): a collection holds the
    whole event loop, so its pauses are every request's and every socket's latency."""
    global _collector_watched
    if _collector_watched:
        return
    _collector_watched = True
    started = 0.0
    longest = 0.0

    def timed(phase: str, info: dict[str, Any]) -> None:
        nonlocal started, longest
        if phase == "start":
            started = time.perf_counter()
            return
        pause = time.perf_counter() - started
        GC_PAUSE.observe(pause)
        if pause > longest:
            longest = pause
            GC_PAUSE_MAX.set(pause)

    gc.callbacks.append(timed)


# Each committed money movement shows in exactly one of its events.
_POSTING_OF_EVENT = {
    "payment.succeeded": "topup",
    "tip.received": "tip",
    "ppv.sold": "purchase",
    "payout.paid": "payout",
    "refund.processed": "refund",
}


def count_postings(events: Any) -> None:
    for event in events:
        kind = _POSTING_OF_EVENT.get(event.type)
        if kind is not None:
            POSTINGS.labels(kind).inc()


def observe_delivery(frame: Frame) -> None:
    if frame.occurred is not None:
        DELIVERY_LAG.observe(max(0.0, time.time() - frame.occurred))


_OUTBOX = text(
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM outbox"
)


class Sampler:
    """Every second: the process's own counters into the series; every 5 s the cluster-wide
    samples (backlog, queue depth, failed jobs, the books) from PostgreSQL and Redis."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._last: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def _sources(self) -> dict[str, Callable[[], int]]:
        realtime, fees = self._hub.realtime, self._hub.fees
        return {
            "bus_lost": lambda: realtime.subscriber.lost_count,
            "sent": lambda: realtime.delivery.sent,
            "gap_fills": lambda: realtime.delivery.gap_fills,
            "republished": lambda: realtime.sweeper.republished,
            "slow": lambda: realtime.slow_consumers,
            "recoveries": lambda: realtime.delivery.recoveries,
            "fee_hits": lambda: fees.hits,
            "fee_misses": lambda: fees.misses,
        }

    def sample_process(self) -> None:
        for name, read in self._sources().items():
            value = read()
            delta = value - self._last.get(name, 0)
            if delta > 0:
                COUNTERS[name].inc(delta)
            self._last[name] = value
        realtime = self._hub.realtime
        SOCKETS.set(realtime.delivery.count)
        BUS_SUBSCRIBED.set(1 if realtime.ready else 0)
        with contextlib.suppress(Exception):
            POOL_IN_USE.set(self._hub.engine.pool.checkedout())  # type: ignore[attr-defined]

    async def sample_cluster(self) -> None:
        hub = self._hub
        with contextlib.suppress(Exception):
            BACKLOG.set(await hub.realtime.sweeper.backlog())
        with contextlib.suppress(Exception):
            QUEUE_DEPTH.set(await hub.redis.zcard("arq:queue"))
        with contextlib.suppress(Exception):
            async with hub.sessions() as session:
                JOBS_FAILED.set(
                    await session.scalar(select(func.count()).select_from(failed_jobs)) or 0
                )
                last = await last_reconciliation(session)
                if last is not None:
                    RECONCILIATION_OK.labels("cluster").set(1 if last["ok"] else 0)
                    RECONCILIATION_FINISHED.labels("cluster").set(
                        datetime.fromisoformat(last["finished_at"]).timestamp()
                    )
                PAYMENTS_UNCONFIRMED.set(await count_unconfirmed(session))
                rows, oldest = (await session.execute(_OUTBOX)).one()
                OUTBOX_ROWS.set(rows)
                OUTBOX_OLDEST.set(oldest)

    async def _run(self) -> None:
        tick = 0
        while True:
            self.sample_process()
            if tick % 5 == 0:
                await self.sample_cluster()
            tick += 1
            await asyncio.sleep(1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _authorize(request: Request) -> None:
    """With HUB_METRICS_TOKEN set, only its bearer may scrape. Digests of equal length are
    compared in constant time, so the answer's timing says nothing about the token."""
    expected = request.app.state.hub.settings.metrics_token
    if expected is None:
        return
    presented = bearer(request.headers.get("authorization"))
    if not hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(),
        hashlib.sha256(expected.get_secret_value().encode()).digest(),
    ):
        raise AuthError("invalid_token", "this is not the metrics token")


@operation(
    "Prometheus metrics (text format); with HUB_METRICS_TOKEN set, only for "
    "`Authorization: Bearer <that token>`",
    {
        "200": "metrics",
        "401": "HUB_METRICS_TOKEN is set and the request does not carry it",
    },
    security=[{}, {"metricsToken": []}],
)
async def metrics(request: Request) -> Response:
    _authorize(request)
    sampler: Sampler = request.app.state.sampler
    sampler.sample_process()  # this process's figures are current, not a second old
    if request.app.state.metrics_multiprocess:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
