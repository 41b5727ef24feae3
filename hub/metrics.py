"""Prometheus metrics at /metrics, read from the node's own objects at scrape time.

A collector per app (not module-level counters), so each hub process reports its own state.
The full operations set (HTTP durations, postings, webhook outcomes, queue depth, several
uvicorn workers) builds on this.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from hub.state import Hub


class RealtimeCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        realtime = self._hub.realtime
        yield GaugeMetricFamily(
            "hub_event_bus_subscribed",
            "1 while this node is subscribed to the event bus on Redis",
            value=1 if realtime.ready else 0,
        )
        yield CounterMetricFamily(
            "hub_event_bus_subscription_lost",
            "Times this node lost its event bus subscription",
            value=realtime.subscriber.lost_count,
        )
        yield GaugeMetricFamily(
            "hub_sockets_connected", "Sockets connected to this node", value=realtime.delivery.count
        )
        yield CounterMetricFamily(
            "hub_events_sent", "Events sent to sockets by this node", value=realtime.delivery.sent
        )
        yield CounterMetricFamily(
            "hub_event_gap_fills",
            "Times a connection's gap was filled from the event log",
            value=realtime.delivery.gap_fills,
        )
        yield CounterMetricFamily(
            "hub_events_republished",
            "Events republished by this node's sweeper",
            value=realtime.sweeper.republished,
        )
        yield CounterMetricFamily(
            "hub_socket_slow_consumers",
            "Sockets disconnected because they did not read",
            value=realtime.slow_consumers,
        )
        fees = self._hub.fees
        yield CounterMetricFamily(
            "hub_fee_cache_hits", "Platform fee reads served by the cache", value=fees.hits
        )
        yield CounterMetricFamily(
            "hub_fee_cache_misses",
            "Platform fee reads that went to Redis or PostgreSQL",
            value=fees.misses,
        )


def registry_for(hub: Hub) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RealtimeCollector(hub))
    return registry


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
