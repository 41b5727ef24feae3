"""What an app sets for itself (`hub apps set`, ledger.apps.set_app_settings): its platform fee
and currencies apply to its users' money, its server API has its own rate limit, and its pages'
origins may open sockets for its users only. The default app's are the deployment's."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt
import pytest
import socketio

from hub.apps import AppDirectory
from hub.auth import Verifiers
from ledger.accounts import Role, ensure_user
from ledger.apps import Scope, create_app, create_key, set_app_settings, set_tokens
from ledger.db import unit_of_work
from ledger.errors import LedgerError
from ledger.funding import fund_wallet_for_development
from ledger.ids import stored_id
from ledger.money import Money
from ledger.overlays import create_key as create_overlay_key
from tests.conftest import FEE_BPS, SocketProbe, auth, hub_server, make_settings

SECRET = "a" * 48


def app_token(issuer: str, user_id: str, role: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "role": role, "iss": issuer, "iat": now, "exp": now + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def platform(sessions, **settings: Any) -> tuple[str, str, str]:
    """A new app with tokens of its own, an API key, and `settings`: (app, issuer, key)."""
    app_id = f"set-{uuid.uuid4().hex[:10]}"
    issuer = f"https://{app_id}.example.com/"
    async with unit_of_work(sessions) as uow:
        await create_app(uow.session, app_id, "Its own settings")
        await set_tokens(uow.session, app_id, issuer, secret=SECRET)
        await set_app_settings(uow.session, app_id, **settings)
        _, key = await create_key(uow.session, app_id, (Scope.READ,))
    # a node reads a new app's settings and issuer at its first request, at most this often
    await asyncio.sleep(max(Verifiers.UNKNOWN_ISSUER_REFRESH, AppDirectory.UNKNOWN_REFRESH))
    return app_id, issuer, key


def bearer(value: str, idempotency: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {value}"}
    if idempotency:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


async def test_an_apps_fee_and_currencies_apply_to_its_users_money(
    http, sessions, uid, people
) -> None:
    assert FEE_BPS != 250
    app_id, issuer, key = await platform(sessions, fee_bps=250, currencies=["NGN"])
    fan, creator = uid("fan"), uid("creator")
    fan_token, creator_token = app_token(issuer, fan, "fan"), app_token(issuer, creator, "creator")
    assert (await http.get("/api/v1/me", headers=bearer(creator_token))).status_code == 200
    wallet = await http.get("/api/v1/wallet", headers=bearer(fan_token))
    assert wallet.status_code == 200, wallet.text
    # its users hold accounts in its currencies only
    assert {b["currency"] for b in wallet.json()["balances"]} == {"NGN"}
    async with unit_of_work(sessions) as uow:
        await fund_wallet_for_development(
            uow.session, stored_id(app_id, fan), Money(10_000, "NGN"), reference=f"funding:{fan}"
        )

    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 10_000, "currency": "NGN"},
        headers=bearer(fan_token, idempotency=True),
    )
    assert tip.status_code == 201, tip.text
    assert (tip.json()["fee"]["amount"], tip.json()["net"]["amount"]) == (250, 9_750)  # 2.50 %

    dollars = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 100, "currency": "USD"},
        headers=bearer(fan_token, idempotency=True),
    )
    assert dollars.status_code == 422
    assert dollars.json()["error"] == {
        "type": "invalid_request",
        "message": "currency: must be one of NGN",
        "param": "currency",
    }

    # the default app's users: the deployment's fee and currencies, as before
    default_tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 10_000, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert default_tip.status_code == 201, default_tip.text
    assert default_tip.json()["fee"]["amount"] == 10_000 * FEE_BPS // 10_000

    shown = await http.get("/api/v1/app", headers=bearer(key))
    assert shown.status_code == 200, shown.text
    assert shown.json()["id"] == app_id
    assert shown.json()["own"] == {
        "fee_bps": 250,
        "currencies": ["NGN"],
        "rate_limit_server": None,
        "allowed_origins": [],
    }
    assert shown.json()["effective"]["fee_bps"] == 250
    assert shown.json()["effective"]["currencies"] == ["NGN"]


async def test_a_currency_given_to_an_app_later_reaches_its_known_users(
    http, sessions, uid
) -> None:
    """A user this node has seen gets the new currency's accounts at their next request (the
    node reads the app's settings again within REFRESH): no card payment can succeed into a
    wallet that does not exist. Payouts take any of the deployment's currencies."""
    app_id, issuer, _ = await platform(sessions, currencies=["NGN"])
    fan_token = app_token(issuer, uid("fan"), "fan")

    async def currencies() -> set[str]:
        wallet = await http.get("/api/v1/wallet", headers=bearer(fan_token))
        assert wallet.status_code == 200, wallet.text
        return {b["currency"] for b in wallet.json()["balances"]}

    assert await currencies() == {"NGN"}
    async with unit_of_work(sessions) as uow:
        await set_app_settings(uow.session, app_id, currencies=["NGN", "USD"])
    deadline = time.monotonic() + AppDirectory.REFRESH + 5
    while await currencies() != {"NGN", "USD"}:
        assert time.monotonic() < deadline, "the new currency never reached the node"
        await asyncio.sleep(0.5)
    creator_token = app_token(issuer, uid("creator"), "creator")
    payout = await http.post(
        "/api/v1/payouts",
        json={"amount": 100, "currency": "USD"},
        headers=bearer(creator_token, idempotency=True),
    )
    assert payout.status_code == 402  # a currency it may hold, with nothing earned in it yet


async def test_an_apps_server_api_has_its_own_rate_limit(http, sessions, uid) -> None:
    """Its own limit, not the deployment's (unlimited in these tests) nor another app's."""
    _, _, limited = await platform(sessions, rate_limit_server="2/minute")
    _, _, other = await platform(sessions)
    user = uid("fan")
    answers = [
        await http.get("/api/v1/presence", params={"user_id": user}, headers=bearer(limited))
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "2"
    for _ in range(3):
        elsewhere = await http.get(
            "/api/v1/presence", params={"user_id": user}, headers=bearer(other)
        )
        assert elsewhere.status_code == 200


@pytest.mark.parametrize("socket_engine", ["hub", "python-socketio"])
async def test_an_apps_pages_open_sockets_from_its_origins_for_its_users_only(
    socket_engine, services, sessions, uid
) -> None:
    """The handshake lets in any app's origin (it cannot know the socket's app yet); the
    connect, which does, refuses a user of an app that does not list it. On both socket
    engines (HUB_SOCKET_ENGINE)."""
    live = hub_server(make_settings(services, socket_engine=socket_engine))
    await live.start()
    try:
        await _origins(live, sessions, uid)
    finally:
        await live.stop()


async def _origins(live: Any, sessions: Any, uid: Any) -> None:
    origin = f"https://{uuid.uuid4().hex[:8]}.pages.example"
    listed, listed_issuer, _ = await platform(sessions, allowed_origins=[origin])
    other, other_issuer, _ = await platform(sessions)
    overlays = {}
    for app_id in (listed, other):  # an overlay key of a creator of each app
        creator = uid("creator")
        async with unit_of_work(sessions) as uow:
            await ensure_user(
                uow.session, stored_id(app_id, creator), Role.CREATOR, ("NGN",), app_id=app_id
            )
            _, overlays[app_id] = await create_overlay_key(
                uow.session, stored_id(app_id, creator), "OBS", limit=5
            )
    await asyncio.sleep(AppDirectory.REFRESH + 0.5)  # the handshake's list is read this often

    async def connect(token: str, from_origin: str, as_overlay: bool = False) -> Any:
        """None when the socket connected, else what the client was told."""
        probe = SocketProbe()
        refusals: list[Any] = []
        probe.client.on("connect_error", lambda data: refusals.append(data))
        try:
            await probe.client.connect(
                live.url,
                auth={"overlay_key": token} if as_overlay else {"token": token},
                headers={"Origin": from_origin},
                transports=["websocket"],
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError:
            return refusals[0] if refusals else "refused"
        await probe.client.disconnect()
        return None

    assert await connect(app_token(listed_issuer, uid("fan"), "fan"), origin) is None
    refused = await connect(app_token(other_issuer, uid("fan"), "fan"), origin)
    assert refused["data"]["type"] == "origin_not_allowed"
    # an origin no app lists is refused at the handshake (no Socket.IO answer), whoever asks
    at_handshake = await connect(app_token(listed_issuer, uid("fan"), "fan"), "https://x.example")
    assert at_handshake == "Connection error"
    # an overlay is held to its creator's app
    assert await connect(overlays[listed], origin, as_overlay=True) is None
    refused = await connect(overlays[other], origin, as_overlay=True)
    assert refused["data"]["type"] == "origin_not_allowed"
    # the hub's own pages stay open to everyone
    assert await connect(app_token(other_issuer, uid("fan"), "fan"), live.url) is None


async def test_settings_are_checked_and_the_default_apps_are_the_deployments(sessions) -> None:
    async with unit_of_work(sessions) as uow:
        app_id = f"chk-{uuid.uuid4().hex[:10]}"
        await create_app(uow.session, app_id, "Checked")
        for wrong in (
            {"fee_bps": 5_001},
            {"fee_bps": -1},
            {"currencies": []},
            {"currencies": ["naira"]},
            {"rate_limit_server": ""},
            {"allowed_origins": ["https://a.example/path"]},
            {"allowed_origins": ["*"]},
            {"allowed_origins": ["javascript:alert(1)"]},
        ):
            with pytest.raises(LedgerError):
                await set_app_settings(uow.session, app_id, **wrong)
        changed = await set_app_settings(
            uow.session, app_id, fee_bps=0, currencies=["USD", "NGN", "USD"]
        )
        assert (changed.fee_bps, changed.currencies) == (0, ("USD", "NGN"))
        back = await set_app_settings(uow.session, app_id, fee_bps=None)
        assert (back.fee_bps, back.currencies) == (None, ("USD", "NGN"))
        with pytest.raises(LedgerError, match="deployment"):
            await set_app_settings(uow.session, "default", fee_bps=100)


async def test_a_new_apps_settings_reach_a_node_that_has_read_the_others() -> None:
    """The directory a node keeps: a known app's settings are read again within REFRESH, an
    app it has not seen at once (at most every UNKNOWN_REFRESH)."""
    from ledger.apps import AppSettings

    rows = [AppSettings("one", fee_bps=1)]
    reads: list[float] = []

    async def load() -> list[AppSettings]:
        reads.append(time.monotonic())
        return list(rows)

    directory = AppDirectory(load)
    assert (await directory.get("one")).fee_bps == 1
    rows.append(AppSettings("two", fee_bps=2, allowed_origins=("https://two.example",)))
    assert (await directory.get("two")).fee_bps is None  # read a moment ago: not yet
    await asyncio.sleep(AppDirectory.UNKNOWN_REFRESH)
    assert (await directory.get("two")).fee_bps == 2
    assert directory.origins() == {"https://two.example"}
    rows[0] = AppSettings("one", fee_bps=10)
    assert (await directory.get("one")).fee_bps == 1  # known: kept until REFRESH
    assert len(reads) == 2
