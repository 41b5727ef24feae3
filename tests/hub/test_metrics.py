"""/metrics: the cluster-wide gauges of the books (last reconciliation, unconfirmed payments);
a bearer token when HUB_METRICS_TOKEN is set; refused by the example balancer
(deploy/nginx.conf) while the nodes still serve it to Prometheus directly."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from hub.runtime import build_provider_clients
from jobs import maintenance
from jobs.verification import verify
from ledger.payments import count_unconfirmed
from ledger.schema import reconciliations
from providers.registry import Providers
from providers.signatures import sign_paystack
from tests.conftest import (
    NGINX,
    PAYSTACK_SECRET,
    LiveServer,
    Services,
    Stack,
    balancer,
    hub_server,
    make_settings,
)
from tests.money import start_topup

METRICS_TOKEN = "metrics-" + "t" * 32


async def gauge(http: httpx.AsyncClient, name: str) -> float | None:
    body = (await http.get("/metrics")).text
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


async def sampled(http: httpx.AsyncClient, name: str, expected: float) -> float | None:
    """The gauge once the sampler (every 5 s) has caught up with `expected`, or its last value
    after 30 s of trying."""
    value = None
    for _ in range(150):
        value = await gauge(http, name)
        if value is not None and abs(value - expected) < 0.001:
            break
        await asyncio.sleep(0.2)
    return value


async def _forged_paystack_success(http: httpx.AsyncClient, fan: str) -> int:
    """A signed success for a payment Paystack never saw (as a leaked key would allow)."""
    unpaid = await start_topup(http, fan, 2_500, "paystack")
    body = json.dumps(
        {
            "event": "charge.success",
            "data": {
                "id": 515151,
                "reference": unpaid["reference"],
                "amount": 2_500,
                "currency": "NGN",
                "status": "success",
            },
        }
    ).encode()
    answer = await http.post(
        "/webhooks/paystack",
        content=body,
        headers={"x-paystack-signature": sign_paystack(body, PAYSTACK_SECRET)},
    )
    assert answer.json()["outcome"] == "applied"
    return int(unpaid["id"])


async def test_unconfirmed_payments_are_counted(
    http, sessions, services: Services, stack: Stack, uid
) -> None:
    payment_id = await _forged_paystack_success(http, uid("fan"))
    async with sessions() as session:
        before = await count_unconfirmed(session)
    providers, client = build_provider_clients(make_settings(services, stack.sandbox.url))
    try:
        outcome = await verify({"sessions": sessions, "providers": providers}, payment_id)
    finally:
        await client.aclose()
    assert outcome.startswith("NOT CONFIRMED")
    async with sessions() as session:
        now = await count_unconfirmed(session)
        # The count reads the partial index of migration 0006, not every payment.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            (
                await session.execute(
                    text(
                        "EXPLAIN SELECT count(*) FROM payments WHERE status = 'succeeded' "
                        "AND verification LIKE 'NOT CONFIRMED%'"
                    )
                )
            ).scalars()
        )
    assert now == before + 1
    assert "payments_unconfirmed" in plan, plan
    assert await sampled(http, "hub_payments_unconfirmed", now) == now


async def test_the_last_reconciliation_time_is_exported(http, sessions) -> None:
    ctx = {"sessions": sessions, "providers": Providers({}, None)}
    report = await maintenance.run_reconciliation(ctx)
    async with sessions() as session:
        finished = await session.scalar(
            select(func.extract("epoch", reconciliations.c.finished_at)).where(
                reconciliations.c.id == report["id"]
            )
        )
    name = "hub_reconciliation_last_finished_timestamp_seconds"
    value = await sampled(http, name, float(finished))
    assert value is not None and abs(value - float(finished)) < 0.001
    assert await gauge(http, "hub_reconciliation_ok") == 1.0


async def test_metrics_are_open_when_no_token_is_set(http: httpx.AsyncClient) -> None:
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert "# TYPE hub_http_request_duration_seconds histogram" in answer.text


async def test_garbage_collections_are_timed(http: httpx.AsyncClient) -> None:
    """Every collection of the process is timed: the histogram counts them and the gauge
    holds the longest."""
    import gc

    before = re.search(
        r"^hub_gc_pause_seconds_count (\S+)$", (await http.get("/metrics")).text, re.M
    )
    gc.collect()
    text_ = (await http.get("/metrics")).text
    count = re.search(r"^hub_gc_pause_seconds_count (\S+)$", text_, re.M)
    longest = re.search(r"^hub_gc_pause_max_seconds (\S+)$", text_, re.M)
    assert before is not None and count is not None
    assert float(count.group(1)) > float(before.group(1))
    assert longest is not None and float(longest.group(1)) > 0


async def test_metrics_need_the_token_when_one_is_set(services: Services) -> None:
    server = hub_server(make_settings(services, metrics_token=METRICS_TOKEN))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            missing = await client.get("/metrics")
            assert missing.status_code == 401
            assert missing.json()["error"]["type"] == "missing_token"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            for wrong in (
                f"Bearer {METRICS_TOKEN[:-1]}",
                f"Bearer {METRICS_TOKEN}x",
                f"Bearer {METRICS_TOKEN.upper()}",
                f"Basic {METRICS_TOKEN}",
                METRICS_TOKEN,
            ):
                refused = await client.get("/metrics", headers={"Authorization": wrong})
                assert refused.status_code == 401, wrong
                assert "hub_" not in refused.text
            allowed = await client.get(
                "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
            assert allowed.status_code == 200
            assert "# TYPE hub_http_request_duration_seconds histogram" in allowed.text
            # Only /metrics is guarded: health, the API and its document are as before.
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/openapi.json")).status_code == 200
    finally:
        await server.stop()


@pytest.mark.skipif(NGINX is None, reason="nginx not installed (Debian package nginx-light)")
async def test_the_balancer_refuses_metrics_and_forwards_the_rest(
    live: LiveServer, tmp_path: Path
) -> None:
    async with balancer(tmp_path, live.port) as url, httpx.AsyncClient(timeout=10) as client:
        health = await client.get(f"{url}/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert (await client.get(f"{url}/openapi.json")).status_code == 200
        for path in ("/metrics", "/metrics/", "//metrics", "/%6Detrics", "/metrics?x=1"):
            refused = await client.get(f"{url}{path}")
            assert refused.status_code == 403, path
            assert "hub_" not in refused.text
        # Prometheus scrapes the node itself.
        assert (await client.get(f"{live.url}/metrics")).status_code == 200


def test_reconciliation_gauges_are_absent_until_a_reconciliation_is_read() -> None:
    """A fresh node must not export hub_reconciliation_ok 0 (HubReconciliationFailed would page
    someone) nor a finish time of 0 (HubReconciliationStale) before any reconciliation ran."""
    exposition = subprocess.run(
        [
            sys.executable,
            "-c",
            "import hub.metrics, prometheus_client as p; print(p.generate_latest().decode())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "# TYPE hub_reconciliation_ok gauge" in exposition
    samples = [line for line in exposition.splitlines() if line.startswith("hub_reconciliation")]
    assert samples == []


async def test_the_outbox_backlog_is_exported(http, sessions) -> None:
    """A follow-up nobody drained for ten minutes shows in hub_outbox_oldest_seconds (what
    HubOutboxStuck watches) and in hub_outbox_rows."""
    async with sessions() as session, session.begin():
        row = await session.scalar(
            text(
                "INSERT INTO outbox (topic, ref, created_at) "
                "VALUES ('payment.verify', 0, now() - interval '10 minutes') RETURNING id"
            )
        )
    try:
        oldest = None
        for _ in range(150):  # the sampler reads the database every 5 s
            oldest = await gauge(http, "hub_outbox_oldest_seconds")
            if oldest is not None and oldest >= 600:
                break
            await asyncio.sleep(0.2)
        assert oldest is not None and 600 <= oldest < 3600
        assert (await gauge(http, "hub_outbox_rows") or 0) >= 1
    finally:
        async with sessions() as session, session.begin():
            await session.execute(text("DELETE FROM outbox WHERE id = :id"), {"id": row})
