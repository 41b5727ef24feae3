"""The pages in a real headless Chromium: a fan tips on one page while the creator's dashboard
and overlay, open in others, show the alert; missed tips appear once after a server restart; a
`<script>` message stays text; top-up through the sandbox's checkout; pay-per-view; admin; PWA.

Timings (tip → alert on screen) are written to test-artifacts/browser/latency.json, never
asserted: bench/browser.py measures them (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.auth import issue_token
from hub.embedded import free_port
from jobs.analytics import rollup
from jobs.push import alert_payload
from ledger.accounts import Role
from ledger.money import Money
from tests.browser.conftest import ARTIFACTS, Pages, sign_in
from tests.conftest import (
    JWT_SECRET,
    LiveServer,
    Services,
    Stack,
    create_user,
    hub_server,
    make_settings,
    run_jobs,
)
from tests.money import deliver

LIVE = 10_000  # ms a page may take to show what the test waits for (a bound, not a goal)
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@dataclass
class Cast:
    fan: str
    creator: str
    fan_token: str
    creator_token: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def cast(
    sessions: async_sessionmaker[AsyncSession], uid: Callable[[str], str], fund: int = 100_000
) -> Cast:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(fund, "NGN"))
    return Cast(
        fan=fan,
        creator=creator,
        fan_token=issue_token(JWT_SECRET, fan, Role.FAN, 3600, name="Ada"),
        creator_token=issue_token(JWT_SECRET, creator, Role.CREATOR, 3600, name="Cleo"),
    )


async def tip_over_http(
    http: httpx.AsyncClient, people: Cast, amount: int, message: str | None = None
) -> int:
    answer = await http.post(
        "/api/v1/tips",
        headers={**bearer(people.fan_token), "Idempotency-Key": f"tip-{time.time_ns()}"},
        json={
            "creator_id": people.creator,
            "amount": amount,
            "currency": "NGN",
            "message": message,
        },
    )
    assert answer.status_code == 201, answer.text
    tip_id: int = answer.json()["id"]
    return tip_id


async def overlay_key(http: httpx.AsyncClient, people: Cast) -> str:
    answer = await http.post(
        "/api/v1/overlay-keys", headers=bearer(people.creator_token), json={"label": "OBS"}
    )
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


async def open_dashboard(pages: Pages, url: str, people: Cast) -> Page:
    page = await pages.open(f"{url}/app/")
    await sign_in(page, people.creator_token, "/app/creator")
    return page


async def open_fan_page(pages: Pages, url: str, people: Cast, **options: Any) -> Page:
    page = await pages.open(f"{url}/app/", **options)
    await sign_in(page, people.fan_token, "/app/fan")
    return page


async def tip_ids(page: Page) -> list[int]:
    ids: list[str] = await page.locator("#tips li[data-tip-id]").evaluate_all(
        "items => items.map(li => li.dataset.tipId)"
    )
    return [int(i) for i in ids]


def record_latency(name: str, seconds: float) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "latency.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = round(seconds * 1000)
    path.write_text(json.dumps(figures, indent=2))


async def test_a_tip_on_the_fan_page_shows_on_the_dashboard_and_the_overlay(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    key = await overlay_key(http, people)
    dashboard = await open_dashboard(pages, live.url, people)
    # Streaming software shows the overlay at 1920x1080 on a transparent background.
    overlay = await pages.open(
        f"{live.url}/app/overlay?duration=60000#key={key}",
        viewport={"width": 1920, "height": 1080},
    )
    await overlay.locator("body[data-live=live]").wait_for(state="attached", timeout=LIVE)
    fan = await open_fan_page(pages, live.url, people)
    await fan.locator("#balances li[data-currency=NGN] .amount", has_text="₦1,000.00").wait_for()

    form = fan.locator("#tip-form")
    await form.get_by_label("Creator").fill(people.creator)
    await form.get_by_label("Creator").press("Tab")
    await fan.locator("#creator-name", has_text="Tipping").wait_for(timeout=LIVE)
    await form.get_by_label("Amount").fill("250")
    await form.get_by_label("Message (optional)").fill("Great stream!")
    started = time.monotonic()
    await form.get_by_role("button", name="Send tip").click()

    alert = dashboard.locator(".tip-alert")
    await alert.wait_for(timeout=LIVE)
    record_latency("fan_click_to_dashboard_alert_ms", time.monotonic() - started)
    shown = overlay.locator(".alert")
    await shown.wait_for(timeout=LIVE)
    record_latency("fan_click_to_overlay_alert_ms", time.monotonic() - started)

    assert await alert.locator(".who").text_content() == "Ada tipped"
    assert await alert.locator(".amount").text_content() == "₦250.00"
    assert await alert.locator(".message").text_content() == "Great stream!"
    assert await shown.locator(".who").text_content() == "Ada tipped"
    assert await shown.locator(".amount").text_content() == "₦250.00"
    assert await shown.locator(".message").text_content() == "Great stream!"
    tip_id = int(await alert.get_attribute("data-tip-id") or 0)
    assert await shown.get_attribute("data-tip-id") == str(tip_id)
    await dashboard.locator(f"#tips li[data-tip-id='{tip_id}']").wait_for()
    assert await tip_ids(dashboard) == [tip_id]
    # The money moved, and both balances changed live: 10 % platform fee.
    await fan.locator("#balances li[data-currency=NGN] .amount", has_text="₦750.00").wait_for(
        timeout=LIVE
    )
    await dashboard.locator("#earnings li[data-currency=NGN] .amount", has_text="₦225.00").wait_for(
        timeout=LIVE
    )
    await fan.locator("#tip-notice", has_text="Sent ₦250.00").wait_for()
    mine = fan.locator("#activity li", has_text="Tip to Cleo \N{MINUS SIGN}₦250.00")
    await mine.wait_for(timeout=LIVE)
    assert await mine.locator(".message").text_content() == "Great stream!"
    # The overlay's page is transparent: streaming software draws only the alert.
    background = await overlay.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgba(0, 0, 0, 0)"

    await pages.screenshot(fan, "fan")
    await pages.screenshot(dashboard, "dashboard")
    await pages.screenshot(overlay, "overlay", full_page=False, transparent=True)
    assert pages.errors == []


async def test_tips_missed_while_the_server_was_down_appear_once(
    pages: Pages,
    services: Services,
    live: LiveServer,
    http: httpx.AsyncClient,
    sessions: Any,
    uid: Any,
) -> None:
    """The dashboard is on a node that restarts; tips made meanwhile (through another node)
    show up once it is back, each once, and a reload shows each once too."""
    people = await cast(sessions, uid)
    port = free_port()
    node = hub_server(make_settings(services), port)
    await node.start()
    try:
        dashboard = await open_dashboard(pages, node.url, people)
        first = await tip_over_http(http, people, 10_000, "before the restart")
        await dashboard.locator(f".tip-alert[data-tip-id='{first}']").wait_for(timeout=LIVE)

        await node.stop()
        banner = dashboard.locator("#reconnecting")
        await banner.wait_for(state="visible", timeout=LIVE)
        assert await dashboard.locator("#status").text_content() == "Reconnecting…"
        await pages.screenshot(dashboard, "reconnecting")
        missed = [
            await tip_over_http(http, people, 20_000, "while it was down"),
            await tip_over_http(http, people, 30_000, "also while it was down"),
        ]

        node = hub_server(make_settings(services), port)
        await node.start()
        await dashboard.locator(f".tip-alert[data-tip-id='{missed[-1]}']").wait_for(
            timeout=3 * LIVE  # the client's reconnect backoff is at most 5 s
        )
        await banner.wait_for(state="hidden", timeout=LIVE)
        await dashboard.locator("#status[data-state=live]").wait_for()
        assert sorted(await tip_ids(dashboard)) == sorted([first, *missed])
        await dashboard.locator(
            "#earnings li[data-currency=NGN] .amount", has_text="₦540.00"
        ).wait_for(timeout=LIVE)  # 600.00 tipped, less the 10 % fee
        await pages.screenshot(dashboard, "recovered")

        await dashboard.reload()
        await dashboard.locator("#status[data-state=live]").wait_for(timeout=LIVE)
        await dashboard.locator("#tips li[data-tip-id]").nth(2).wait_for(timeout=LIVE)
        assert sorted(await tip_ids(dashboard)) == sorted([first, *missed])
        assert pages.errors == [] or all("socket" in e or "WebSocket" in e for e in pages.errors)
    finally:
        await node.stop()


async def test_a_script_in_a_tip_message_stays_text(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    key = await overlay_key(http, people)
    dashboard = await open_dashboard(pages, live.url, people)
    overlay = await pages.open(f"{live.url}/app/overlay?duration=60000#key={key}")
    await overlay.locator("body[data-live=live]").wait_for(state="attached", timeout=LIVE)
    fan = await open_fan_page(pages, live.url, people)

    tip_id = await tip_over_http(http, people, 5_000, XSS)
    for page, selector in (
        (dashboard, f".tip-alert[data-tip-id='{tip_id}'] .message"),
        (dashboard, f"#tips li[data-tip-id='{tip_id}'] .message"),
        (overlay, f".alert[data-tip-id='{tip_id}'] .message"),
        (fan, "#activity li .message"),
    ):
        shown = page.locator(selector)
        await shown.wait_for(timeout=LIVE)
        assert XSS in (await shown.text_content() or "")
        assert await shown.locator("script, img").count() == 0
    for page in (dashboard, overlay, fan):
        assert await page.evaluate("window.__pwned") is None
    await pages.screenshot(dashboard, "dashboard")
    # And the policy that would stop an injected script anyway is on every page.
    answer = await http.get("/app/creator")
    assert "script-src 'self'" in answer.headers["content-security-policy"]


async def test_top_up_through_the_sandbox_checkout(
    pages: Pages, live: LiveServer, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    fan = await open_fan_page(pages, live.url, people)
    await fan.locator("#balances li[data-currency=NGN] .amount", has_text="₦1,000.00").wait_for()
    form = fan.locator("#topup-form")
    await form.get_by_label("Amount").fill("1,500.50")
    await form.get_by_label("Pay with").select_option("paystack")
    await form.get_by_role("button", name="Continue to checkout").click()
    await fan.get_by_role("button", name="Pay").click()  # the provider's (sandbox's) page
    await fan.get_by_role("link", name="Back to the merchant").click()
    await fan.wait_for_url("**/app/fan**")
    await fan.locator("#status[data-state=live]").wait_for(timeout=LIVE)
    await fan.locator("#balances li[data-currency=NGN] .amount", has_text="₦2,500.50").wait_for(
        timeout=LIVE
    )
    await fan.locator("#activity li", has_text="Top-up +₦1,500.50").wait_for(timeout=LIVE)
    assert await fan.locator("#topup-pending").is_hidden()
    await pages.screenshot(fan, "after-top-up")

    # Declined at the provider: back on the page, it says so, and nothing moved.
    await form.get_by_label("Amount").fill("300")
    await form.get_by_role("button", name="Continue to checkout").click()
    await fan.get_by_role("button", name="Decline").click()
    await fan.get_by_role("link", name="Back to the merchant").click()
    await fan.wait_for_url("**/app/fan**")
    await fan.locator("#topup-notice", has_text="Payment of ₦300.00 failed").wait_for(timeout=LIVE)
    assert await fan.locator("#topup-pending").is_hidden()
    await expect(fan.locator("#balances li[data-currency=NGN] .amount")).to_have_text("₦2,500.50")
    assert "topup" not in fan.url  # the page's address is clean again


async def test_buy_and_open_pay_per_view_content(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    made = await http.post(
        "/api/v1/content",
        headers=bearer(people.creator_token),
        json={
            "title": "Behind the scenes",
            "price": 40_000,
            "currency": "NGN",
            "body": "The secret: <b>practice</b>",
        },
    )
    assert made.status_code == 201, made.text
    content_id = made.json()["id"]
    fan = await open_fan_page(pages, live.url, people)
    creator_field = fan.locator("#tip-form").get_by_label("Creator")
    await creator_field.fill(people.creator)
    await creator_field.press("Tab")
    item = fan.locator(f"#content li[data-content-id='{content_id}']")
    await item.wait_for(timeout=LIVE)
    assert "₦400.00" in (await item.text_content() or "")
    await item.get_by_role("button", name="Buy").click()
    await item.get_by_role("button", name="Open").click()
    await item.locator(".message", has_text="The secret: <b>practice</b>").wait_for()
    await fan.locator("#balances li[data-currency=NGN] .amount", has_text="₦600.00").wait_for(
        timeout=LIVE
    )
    await fan.locator("#activity li", has_text="Pay-per-view \N{MINUS SIGN}₦400.00").wait_for(
        timeout=LIVE
    )
    await pages.screenshot(fan, "unlocked")


async def test_the_admin_page(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid, fund=50_000_000)
    await tip_over_http(http, people, 40_000_000)  # ₦400,000.00: the top creator of the day
    await rollup({"sessions": sessions})  # what the workers' cron does every few minutes
    admin = issue_token(JWT_SECRET, uid("admin"), Role.ADMIN, 3600, name="Operator")
    page = await pages.open(f"{live.url}/app/")
    await sign_in(page, admin, "/app/admin", live=False)
    await page.locator("#fee-now", has_text="10 %").wait_for(timeout=LIVE)
    online = page.locator("#online")
    await page.wait_for_function(
        "/^\\d[\\d,]*$/.test(document.getElementById('online').textContent)"
    )
    assert int((await online.text_content() or "x").replace(",", "")) >= 0
    await page.locator("#revenue-chart svg rect.gross").first.wait_for(timeout=LIVE)
    top = page.locator("#top-rows tr", has_text=people.creator)
    await top.wait_for(timeout=LIVE)
    assert await top.locator("td.num").text_content() == "₦360,000.00"  # net of the 10 % fee
    for period in ("week", "month"):
        await page.get_by_label("By").select_option(period)
        await page.locator("#revenue-rows tr").first.wait_for(timeout=LIVE)
    try:
        await page.get_by_label("New fee (percent, 0 to 50)").fill("7.5")
        await page.get_by_role("button", name="Save").click()
        await page.locator("#fee-notice", has_text="Saved").wait_for(timeout=LIVE)
        fee = await http.get("/api/v1/admin/platform-fee", headers=bearer(admin))
        assert fee.json() == {"bps": 750}
        assert await page.locator("#fee-now").text_content() == "7.5 %"
        await pages.screenshot(page, "admin")
    finally:
        restored = await http.put(
            "/api/v1/admin/platform-fee", headers=bearer(admin), json={"bps": 1000}
        )
        assert restored.status_code == 200


async def test_phone_sized_and_labelled(
    pages: Pages, live: LiveServer, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    for token, path in ((people.fan_token, "/app/fan"), (people.creator_token, "/app/creator")):
        page = await pages.open(f"{live.url}/app/", **phone)
        await sign_in(page, token, path)
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        unlabelled = await page.evaluate(
            """[...document.querySelectorAll('input, select, textarea')]
                 .filter(e => e.type !== 'hidden' && e.labels.length === 0)
                 .map(e => e.id || e.name)"""
        )
        assert unlabelled == []
        nameless = await page.evaluate(
            """[...document.querySelectorAll('button')]
                 .filter(b => !b.textContent.trim() && !b.getAttribute('aria-label'))
                 .length"""
        )
        assert nameless == 0
        await pages.screenshot(page, f"phone-{path.rsplit('/', 1)[-1]}")


async def test_an_installable_app_with_an_offline_shell(
    pages: Pages, profile: BrowserContext, live: LiveServer, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    page = await profile.new_page()
    await page.goto(f"{live.url}/app/")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    cdp = await profile.new_cdp_session(page)
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["errors"] == []
    installability = await cdp.send("Page.getInstallabilityErrors")
    assert installability["installabilityErrors"] == []

    await sign_in(page, people.creator_token, "/app/creator")
    await page.wait_for_function("navigator.serviceWorker.controller !== null")
    await profile.set_offline(True)
    try:
        await page.reload()
        await page.get_by_role("heading", name="Creator dashboard").wait_for()
        await page.locator("#offline").wait_for(timeout=LIVE)
        await pages.screenshot(page, "offline")
    finally:
        await profile.set_offline(False)


async def test_sign_in_refuses_a_bad_token(pages: Pages, live: LiveServer) -> None:
    page = await pages.open(f"{live.url}/app/")
    await page.get_by_label("The access token your platform gave you").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#token-notice", has_text="That token was refused").wait_for()
    assert page.url.endswith("/app/")
    assert await page.evaluate("sessionStorage.getItem('hub:token')") is None


async def test_no_page_puts_a_token_in_a_url(
    pages: Pages, live: LiveServer, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    seen: list[str] = []
    fan = await open_fan_page(pages, live.url, people)
    fan.on("request", lambda request: seen.append(request.url))
    await fan.reload()
    await fan.locator("#status[data-state=live]").wait_for(timeout=LIVE)
    assert seen and all(people.fan_token not in url for url in seen)


async def test_the_service_worker_shows_a_pushed_tip_as_a_notification(
    profile: BrowserContext, live: LiveServer
) -> None:
    """The browser half of Web Push: the payload the push.tip_alert job encrypts and sends
    (jobs.push.alert_payload) is handed to the service worker the way Chromium hands it a
    decrypted push message (DevTools' ServiceWorker.deliverPushMessage; the server half, with
    a real push receiver that decrypts, is tests/jobs/test_push.py)."""
    await profile.grant_permissions(["notifications"], origin=live.url)
    page = await profile.new_page()
    await page.goto(f"{live.url}/app/")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    cdp = await profile.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    await cdp.send("ServiceWorker.enable")
    for _ in range(100):
        if registrations:
            break
        await page.wait_for_timeout(50)
    [registration] = {
        r["registrationId"]: r for r in registrations if r["scopeURL"].endswith("/app/")
    }.values()
    await page.wait_for_function(
        "navigator.serviceWorker.ready.then(r => r.active.state === 'activated')"
    )
    payload = alert_payload(41, "Ada", 150_050, "NGN", XSS).decode()
    notifications = """navigator.serviceWorker.ready
        .then(r => r.getNotifications())
        .then(list => list.map(n => ({title: n.title, body: n.body, tag: n.tag,
                                      url: n.data && n.data.url})))"""
    shown: list[dict[str, Any]] = []
    # The same tip pushed more than once (a retried job) is one notification: the message is
    # delivered again each second until one shows, at least twice.
    for attempt in range(LIVE // 1000):
        await cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": live.url,
                "registrationId": registration["registrationId"],
                "data": payload,
            },
        )
        for _ in range(20):
            shown = await page.evaluate(notifications)
            if shown:
                break
            await page.wait_for_timeout(50)
        if shown and attempt >= 1:
            break
    assert shown == [
        {"title": "Ada tipped ₦1,500.50", "body": XSS, "tag": "tip-41", "url": "/app/creator"}
    ]


async def test_a_payout_request_holds_earnings_and_its_outcome_shows_live(
    pages: Pages,
    services: Services,
    stack: Stack,
    live: LiveServer,
    http: httpx.AsyncClient,
    sessions: Any,
    uid: Any,
) -> None:
    people = await cast(sessions, uid)
    await tip_over_http(http, people, 100_000)  # ₦1,000.00: ₦900.00 to the creator
    dashboard = await open_dashboard(pages, live.url, people)
    earnings = dashboard.locator("#earnings li[data-currency=NGN]")
    await earnings.locator(".amount", has_text="₦900.00").wait_for(timeout=LIVE)
    form = dashboard.locator("#payout-form")
    await form.get_by_label("Amount").fill("500")
    async with dashboard.expect_response("**/api/v1/payouts") as answer:
        await form.get_by_role("button", name="Request payout").click()
    reference = (await (await answer.value).json())["reference"]
    await dashboard.locator("#payout-notice", has_text="Payout of ₦500.00 requested").wait_for(
        timeout=LIVE
    )
    # Held, not yet paid: the balance stays, what can be paid out drops (balance.updated, live).
    await earnings.locator(".muted", has_text="₦400.00 available").wait_for(timeout=LIVE)
    await form.get_by_label("Amount").fill("500")
    await form.get_by_role("button", name="Request payout").click()
    await dashboard.locator("#payout-notice[data-kind=error]").wait_for(timeout=LIVE)
    assert "not enough available balance" in (
        await dashboard.locator("#payout-notice").text_content() or ""
    )
    # A worker sends it; the provider pays it and says so by webhook: the dashboard hears it.
    await run_jobs(services, stack)
    async with httpx.AsyncClient(base_url=stack.sandbox.url, timeout=30) as provider:
        await deliver(provider, f"transfers/{reference}", outcome="succeeded")
    await dashboard.locator("#activity li", has_text="Payout ₦500.00 paid").wait_for(timeout=LIVE)
    await earnings.locator(".amount", has_text="₦400.00").wait_for(timeout=LIVE)
    await pages.screenshot(dashboard, "paid")


async def test_rotating_the_overlay_url_from_the_dashboard_cuts_the_old_one(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    people = await cast(sessions, uid)
    dashboard = await open_dashboard(pages, live.url, people)
    await dashboard.get_by_label("Name (optional)").fill("OBS")
    await dashboard.get_by_role("button", name="New overlay URL").click()
    shown = dashboard.get_by_label("Your overlay URL (shown once: copy it now)")
    await shown.wait_for(timeout=LIVE)
    old_url = await shown.input_value()
    assert old_url.startswith(f"{live.url}/app/overlay#key=ovl_")
    old = await pages.open(old_url)
    await old.locator("body[data-live=live]").wait_for(state="attached", timeout=LIVE)

    rotate = dashboard.get_by_role("button", name="Rotate OBS")
    await rotate.click()
    await expect(rotate).to_have_text("Press again to rotate")  # one tap does not cut a stream
    assert await old.locator("body[data-live=live]").count() == 1
    await rotate.click()
    await dashboard.locator("#overlay-notice", has_text="Rotated").wait_for(timeout=LIVE)
    new_url = await shown.input_value()
    assert new_url != old_url and new_url.startswith(f"{live.url}/app/overlay#key=ovl_")
    await old.locator("#overlay-help", has_text="revoked").wait_for(timeout=LIVE)
    new = await pages.open(new_url)
    await new.locator("body[data-live=live]").wait_for(state="attached", timeout=LIVE)
    tip_id = await tip_over_http(http, people, 7_000)
    await new.locator(f".alert[data-tip-id='{tip_id}']").wait_for(timeout=LIVE)
    await expect(old.locator(".alert")).to_have_count(0)

    revoke = dashboard.get_by_role("button", name="Revoke OBS")
    await revoke.click()
    await revoke.click()
    await dashboard.locator("#overlay-notice", has_text="Revoked").wait_for(timeout=LIVE)
    await new.locator("#overlay-help", has_text="revoked").wait_for(timeout=LIVE)
    await expect(dashboard.locator("#overlay-keys li")).to_have_count(0)


async def test_the_sign_in_form_never_puts_a_token_in_a_url(
    pages: Pages, live: LiveServer, sessions: Any, uid: Any
) -> None:
    """Even when the pages' scripts never load (a missing asset, a slow phone), pressing Sign
    in cannot send the token as a query string: the button waits for the script, and the form
    would POST."""
    people = await cast(sessions, uid)
    context = await pages.browser.new_context()
    pages.contexts.append(context)
    await context.route("**/app/static/js/**", lambda route: route.abort())
    page = await context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    await page.goto(f"{live.url}/app/")
    field = page.get_by_label("The access token your platform gave you")
    await field.fill(people.fan_token)
    await expect(page.get_by_role("button", name="Sign in")).to_be_disabled()
    await field.press("Enter")  # a newline in the field, not a submit
    assert await page.locator("form#token-form").get_attribute("method") == "post"
    assert all(people.fan_token not in url for url in seen)
    assert page.url == f"{live.url}/app/"


async def test_amounts_are_read_the_way_the_person_writes_them(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    """In German "12,50" is twelve naira fifty, and "12.50" is refused rather than read as
    1,250: a misread amount moves real money."""
    people = await cast(sessions, uid)
    fan = await open_fan_page(pages, live.url, people, locale="de-DE")
    form = fan.locator("#tip-form")
    await form.get_by_label("Creator").fill(people.creator)
    amount = form.get_by_label("Amount")
    assert await amount.get_attribute("placeholder") == "1.500,50"
    await amount.fill("12.50")
    await expect(form.locator(".preview")).to_have_text("Write the amount like 1.500,50")
    await form.get_by_role("button", name="Send tip").click()
    await fan.locator("#tip-notice[data-kind=error]").wait_for(timeout=LIVE)
    await amount.fill("12,50")
    await expect(form.locator(".preview")).to_have_text("You send 12,50\N{NO-BREAK SPACE}₦")
    await form.get_by_role("button", name="Send tip").click()
    await fan.locator("#tip-notice[data-kind=ok]").wait_for(timeout=LIVE)
    sent = await http.get("/api/v1/tips?direction=sent", headers=bearer(people.fan_token))
    assert [tip["amount"] for tip in sent.json()["data"]] == [{"amount": 1250, "currency": "NGN"}]
    await pages.screenshot(fan, "german")


async def test_a_creator_on_the_fan_page_still_sees_their_tips(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    """Any open page of a creator's shows their tips (Web Push is skipped while one is open)."""
    people = await cast(sessions, uid)
    page = await pages.open(f"{live.url}/app/")
    await sign_in(page, people.creator_token, "/app/creator")
    await page.goto(f"{live.url}/app/fan")
    await page.locator("#status[data-state=live]").wait_for(timeout=LIVE)
    await tip_over_http(http, people, 12_300, XSS)
    incoming = page.locator("#incoming")
    await incoming.locator("strong", has_text="Ada tipped you ₦123.00").wait_for(timeout=LIVE)
    assert XSS in (await incoming.text_content() or "")
    assert await incoming.locator("script, img").count() == 0


async def test_the_platforms_notifications_show_live_and_a_reload_recovers_the_missed_ones(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    """A platform's backend publishes with its API key: the fan's open page lists it at once;
    the platform disconnects the fan and the page stays away (it does not reconnect by
    itself); what was published meanwhile shows, once, when the fan comes back."""
    from ledger.apps import Scope, create_key
    from ledger.db import unit_of_work

    people = await cast(sessions, uid)
    async with unit_of_work(sessions) as uow:
        _, key = await create_key(uow.session, "default", (Scope.PUBLISH, Scope.ADMIN))
    platform = {"Authorization": f"Bearer {key}"}

    async def publish(type_: str, data: dict[str, Any]) -> int:
        answer = await http.post(
            "/api/v1/notifications",
            headers={**platform, "Idempotency-Key": f"n-{time.time_ns()}"},
            json={"user_id": people.fan, "type": type_, "data": data},
        )
        assert answer.status_code == 201, answer.text
        event_id: int = answer.json()["events"][0]["id"]
        return event_id

    page = await open_fan_page(pages, live.url, people)
    await page.locator("#status[data-state=live]").wait_for(timeout=LIVE)
    await publish("follower.new", {"name": "<b>Tunde</b>"})
    notices = page.locator("#platform li")
    await notices.filter(has_text="app.follower.new").wait_for(timeout=LIVE)
    assert '{"name":"<b>Tunde</b>"}' in (await notices.first.text_content() or "")  # as text

    ended = await http.post(f"/api/v1/users/{people.fan}/disconnect", headers=platform)
    assert ended.status_code == 200 and ended.json()["connections"] == 1
    await page.locator("#status[data-state=ended]").wait_for(timeout=LIVE)
    await publish("call.started", {"room": "42"})
    await page.wait_for_timeout(1_000)  # a page that came back by itself would show it now
    assert await page.locator("#status").get_attribute("data-state") == "ended"
    assert await notices.filter(has_text="app.call.started").count() == 0

    await page.reload()
    await notices.filter(has_text="app.call.started").wait_for(timeout=LIVE)
    assert await notices.filter(has_text="app.follower.new").count() == 0  # seen before: not again
    await pages.screenshot(page, "platform-notifications")


async def test_the_fan_page_follows_the_creators_channel(
    pages: Pages, live: LiveServer, http: httpx.AsyncClient, sessions: Any, uid: Any
) -> None:
    """On a creator's page a fan sees whether the creator is live, their goal filling up, and a
    ticker of everyone's tips, as they happen; a reload keeps the goal where the ledger has it."""
    people = await cast(sessions, uid)
    page = await pages.open(f"{live.url}/app/")
    await sign_in(page, people.fan_token, "/app/fan")
    await page.goto(f"{live.url}/app/fan?creator={people.creator}")
    await page.locator("#status[data-state=live]").wait_for(timeout=LIVE)
    await page.locator("#channel-live", has_text="Offline").wait_for(timeout=LIVE)

    creator = bearer(people.creator_token)
    goal = await http.put(
        "/api/v1/goal",
        json={"title": "New microphone", "target": 100_000, "currency": "NGN"},
        headers=creator,
    )
    assert goal.status_code == 200
    await page.locator("#goal-title", has_text="Goal: New microphone").wait_for(timeout=LIVE)
    await http.put("/api/v1/live", json={"live": True, "title": "Friday jam"}, headers=creator)
    await page.locator("#channel-live", has_text="Live now: Friday jam").wait_for(timeout=LIVE)

    other = uid("fan")
    await create_user(sessions, other, Role.FAN, fund=Money(50_000, "NGN"))
    other_token = issue_token(JWT_SECRET, other, Role.FAN, 3600, name="Tunde")
    answer = await http.post(
        "/api/v1/tips",
        headers={**bearer(other_token), "Idempotency-Key": f"t-{time.time_ns()}"},
        json={"creator_id": people.creator, "amount": 25_000, "currency": "NGN", "message": XSS},
    )
    assert answer.status_code == 201, answer.text
    await page.locator("#ticker li", has_text="Tunde tipped ₦250.00").wait_for(timeout=LIVE)
    await page.locator("#goal-figures", has_text="₦250.00 of ₦1,000.00").wait_for(timeout=LIVE)
    assert await page.evaluate("window.__pwned") is None  # the message stayed text
    await pages.screenshot(page, "creator-channel")

    await page.reload()
    await page.locator("#goal-figures", has_text="₦250.00 of ₦1,000.00").wait_for(timeout=LIVE)
    await page.locator("#channel-live", has_text="Live now: Friday jam").wait_for(timeout=LIVE)
