"""Liveness and readiness, including readiness with PostgreSQL and Redis unreachable."""

from __future__ import annotations

import asyncio
import gc

import httpx

from hub.embedded import free_port
from hub.serving import GC_THRESHOLDS
from tests.conftest import Services, hub_server, make_settings


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    for _ in range(50):  # a starved event loop (a loaded machine) may flap the bus for a moment
        ready = await http.get("/readyz")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.2)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgresql": "ok", "redis": "ok", "event_bus": "ok"}
    assert ready.headers["x-request-id"]


async def test_readyz_names_what_is_down(services: Services) -> None:
    dead = free_port()
    settings = make_settings(
        services,
        database_url=f"postgresql://postgres@127.0.0.1:{dead}/hub",
        redis_url=f"redis://127.0.0.1:{dead}/0",
    )
    server = hub_server(settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.get("/readyz")
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await server.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["postgresql"].startswith("down")
    assert body["checks"]["redis"].startswith("down")
    assert "postgresql" in body["error"]["message"] and "redis" in body["error"]["message"]


async def test_unknown_route_is_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert (await http.delete("/api/v1/tips")).status_code == 405  # GET and POST exist


async def test_metrics_carry_every_series(http, people, sandbox) -> None:
    from tests.conftest import auth
    from tests.money import deliver, key, start_topup

    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), **key()},
    )
    assert tip.status_code == 201
    payment = await start_topup(http, people.fan, 500)
    await deliver(sandbox, f"checkout/{payment['reference']}")
    await http.post("/webhooks/paystack", content=b"{}", headers={"x-paystack-signature": "0"})
    text = (await http.get("/metrics")).text
    for series in (
        'hub_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/tips"',
        'hub_postings_total{kind="tip"}',
        'hub_postings_total{kind="topup"}',
        'hub_webhooks_total{outcome="applied",provider="paystack"}',
        'hub_webhooks_total{outcome="invalid_signature",provider="paystack"}',
        "hub_event_delivery_lag_seconds_bucket",
        "hub_sockets_connected",
        "hub_events_unpublished",
        "hub_queue_depth",
        "hub_jobs_failed",
        "hub_fee_cache_hits_total",
        "hub_db_pool_in_use",
        "hub_event_bus_subscribed 1.0",
        "hub_rate_limited_total" if "hub_rate_limited_total" in text else "hub_rate_limited",
    ):
        assert series in text, series


async def test_a_started_node_freezes_what_start_up_made(services: Services) -> None:
    """HUB_GC_FREEZE (on by default): once the app has started, its objects are frozen out of
    the collector's sight and full collections are rarer (hub.serving)."""
    before = gc.get_threshold()
    gc.unfreeze()
    server = hub_server(make_settings(services, gc_freeze=True))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/healthz")).status_code == 200
        frozen = gc.get_freeze_count()
        thresholds = gc.get_threshold()
    finally:
        await server.stop()
        gc.unfreeze()
        gc.set_threshold(*before)
    assert thresholds == GC_THRESHOLDS
    assert frozen > 10_000  # the modules and the app, at least
