"""Tip alerts on screen: from `POST /api/v1/tips` to the alert drawn in a creator's dashboard
and in their streaming overlay, each open in Debian's headless Chromium, beside the same tip's
`tip.received` on a python-socketio client (the peer: the event's arrival with no browser and
no page). One tip at a time, a second apart, so that no alert waits behind another.

    python -m bench.alerts [--tips 30] [--runs 3]

Times are wall-clock on one machine: the tip's start (just before the request) and the moment
a MutationObserver in the page sees the alert's element (performance.timeOrigin + now()).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import httpx
import socketio

from bench.common import (
    Services,
    create_users,
    log,
    percentile,
    run,
    runs_wanted,
    start_hub,
    summarise,
    token,
    write_result,
)
from bench.tips import fund

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Records, per tip id, when an alert for it first appears in the page.
WATCH = """
window.__seen = {};
new MutationObserver(() => {
  for (const node of document.querySelectorAll(".tip-alert[data-tip-id], .alert[data-tip-id]")) {
    const id = node.dataset.tipId;
    if (!(id in window.__seen)) window.__seen[id] = performance.timeOrigin + performance.now();
  }
}).observe(document, { subtree: true, childList: true });
"""


def stats(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "max_ms": max(values) if values else None,
        "missing": 0.0,
    }


async def one_run(url: str, database_url: str, tips: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    creator, fan = f"bench-creator-{uuid.uuid4().hex[:8]}", f"bench-fan-{uuid.uuid4().hex[:8]}"
    await create_users(database_url, [creator], "creator")
    await create_users(database_url, [fan], "fan")
    await fund(database_url, [fan])
    creator_token, fan_token = token(creator, "creator"), token(fan, "fan")
    started: dict[int, float] = {}
    answered: dict[int, float] = {}
    peer_seen: dict[int, float] = {}

    peer = socketio.AsyncClient(reconnection=False)

    @peer.on("tip.received")  # type: ignore[untyped-decorator]
    async def _tip(event: dict[str, Any]) -> None:
        peer_seen.setdefault(int(event["data"]["tip_id"]), time.time() * 1000)

    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        async_playwright() as playwright,
    ):
        made = await http.post(
            "/api/v1/overlay-keys",
            headers={"Authorization": f"Bearer {creator_token}"},
            json={"label": "bench"},
        )
        key = made.json()["key"]
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            dashboard_context = await browser.new_context()
            await dashboard_context.add_init_script(WATCH)
            dashboard = await dashboard_context.new_page()
            await dashboard.goto(f"{url}/app/")
            await dashboard.get_by_label("The access token your platform gave you").fill(
                creator_token
            )
            await dashboard.get_by_role("button", name="Sign in").click()
            await dashboard.locator("#status[data-state=live]").wait_for(timeout=30_000)
            overlay_context = await browser.new_context()
            await overlay_context.add_init_script(WATCH)
            overlay = await overlay_context.new_page()
            await overlay.goto(f"{url}/app/overlay?duration=300#key={key}")
            await overlay.locator("body[data-live=live]").wait_for(state="attached", timeout=30_000)
            await peer.connect(url, auth={"token": creator_token}, transports=["websocket"])

            for n in range(tips):
                begun = time.time() * 1000
                answer = await http.post(
                    "/api/v1/tips",
                    headers={
                        "Authorization": f"Bearer {fan_token}",
                        "Idempotency-Key": uuid.uuid4().hex,
                    },
                    json={
                        "creator_id": creator,
                        "amount": 100,
                        "currency": "NGN",
                        "message": f"bench {n}",
                    },
                )
                answer.raise_for_status()
                tip_id = int(answer.json()["id"])
                started[tip_id] = begun
                answered[tip_id] = time.time() * 1000
                await asyncio.sleep(1.0)
            await asyncio.sleep(3.0)
            on_dashboard = await dashboard.evaluate("window.__seen")
            on_overlay = await overlay.evaluate("window.__seen")
        finally:
            await peer.disconnect()
            await browser.close()

    def latencies(seen: dict[Any, float]) -> tuple[list[float], int]:
        values = [seen[str(i)] - t for i, t in started.items() if str(i) in seen]
        return values, len(started) - len(values)

    result: dict[str, Any] = {"tips": len(started)}
    for name, seen in (
        ("dashboard", on_dashboard),
        ("overlay", on_overlay),
        ("socket_client", {str(k): v for k, v in peer_seen.items()}),
    ):
        values, missing = latencies(seen)
        result[name] = {**stats(values), "missing": float(missing)}
    result["http"] = stats([answered[i] - started[i] for i in started])
    return result


async def measure(url: str, database_url: str, runs: int, tips: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for n in range(runs):
        result = await one_run(url, database_url, tips)
        log(
            f"run {n + 1}: dashboard p50 {result['dashboard']['p50_ms']:.0f} ms, "
            f"overlay p50 {result['overlay']['p50_ms']:.0f} ms, "
            f"socket client p50 {result['socket_client']['p50_ms']:.0f} ms"
        )
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tips", type=int, default=30)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    args = parser.parse_args()
    with Services() as services:
        hub = start_hub(services)
        try:
            runs = run(measure(hub.url, services.database_url, args.runs, args.tips))
        finally:
            hub.stop()
    path = write_result(
        "alerts", {"tips_per_run": args.tips, "runs": runs, "summary": summarise(runs)}
    )
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
