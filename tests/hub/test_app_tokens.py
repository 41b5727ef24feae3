"""An app's own user tokens: HS256 with the app's secret, or RS256/ES256 with keys it publishes
as a JWKS (served here by a real server on 127.0.0.1, as an identity provider would). A token
names its app by `iss`; its user is that app's, over HTTP and sockets, and money stays inside
the app."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.auth import JWKS_REFETCH_AFTER, Verifiers
from ledger.accounts import Role
from ledger.apps import Scope, create_app, create_key, set_tokens
from ledger.db import unit_of_work
from ledger.funding import fund_wallet_for_development
from ledger.ids import stored_id
from ledger.money import Money
from tests.conftest import JWT_SECRET, LiveServer, auth, create_user, token

SECRET = "s" * 48


def signed(key: Any, algorithm: str, claims: dict[str, Any], kid: str | None = None) -> str:
    now = int(time.time())
    body = {"iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


async def app_with_tokens(sessions, **how: Any) -> tuple[str, str]:
    app_id = f"app-{uuid.uuid4().hex[:10]}"
    issuer = f"https://{app_id}.example.com/"
    async with unit_of_work(sessions) as uow:
        await create_app(uow.session, app_id, "Tokens of its own")
        await set_tokens(uow.session, app_id, issuer, **how)
    return app_id, issuer


async def test_an_apps_hs256_tokens_make_its_own_users(http, live, sessions, sockets, uid) -> None:
    app_id, issuer = await app_with_tokens(sessions, secret=SECRET)
    await asyncio.sleep(Verifiers.UNKNOWN_ISSUER_REFRESH)  # as below
    fan, creator = uid("acme-fan"), uid("acme-creator")
    fan_token = signed(SECRET, "HS256", {"sub": fan, "role": "fan", "iss": issuer})
    creator_token = signed(SECRET, "HS256", {"sub": creator, "role": "creator", "iss": issuer})

    me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {fan_token}"})
    assert me.status_code == 200, me.text
    assert me.json()["id"] == fan  # the platform's id, not the one Hub stores
    assert (
        await http.get("/api/v1/me", headers={"Authorization": f"Bearer {creator_token}"})
    ).status_code == 200
    async with sessions() as session:
        from sqlalchemy import text

        owners = dict(
            (
                await session.execute(
                    text("SELECT id, app_id FROM users WHERE id = ANY(:ids)"),
                    {"ids": [stored_id(app_id, fan), stored_id(app_id, creator)]},
                )
            ).all()
        )
    assert owners == {stored_id(app_id, fan): app_id, stored_id(app_id, creator): app_id}

    # money inside the app: the app's fan tips the app's creator
    async with unit_of_work(sessions) as uow:
        await fund_wallet_for_development(
            uow.session, stored_id(app_id, fan), Money(10_000, "NGN"), reference=f"funding:{fan}"
        )
    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 1_000, "currency": "NGN"},
        headers={"Authorization": f"Bearer {fan_token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert tip.status_code == 201, tip.text
    # ... and not across: to a default-app creator, or from a default-app fan
    default_creator = uid("creator")
    await create_user(sessions, default_creator, Role.CREATOR)
    across = await http.post(
        "/api/v1/tips",
        json={"creator_id": default_creator, "amount": 1_000, "currency": "NGN"},
        headers={"Authorization": f"Bearer {fan_token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert across.status_code == 404
    default_fan = uid("fan")
    await create_user(sessions, default_fan, Role.FAN, fund=Money(5_000, "NGN"))
    inward = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 1_000, "currency": "NGN"},
        headers={**auth(default_fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert inward.status_code == 404

    # the creator's socket, with the app's token: the tip, and the app's own notification
    async with unit_of_work(sessions) as uow:
        _, key = await create_key(uow.session, app_id, (Scope.PUBLISH,))
    watching = sockets()
    await watching.connect(live.url, {"token": creator_token, "last_event_id": 0})
    [outcome] = await watching.wait_for("recovered")
    assert outcome["recovered"] is True
    assert [e["data"]["amount"] for e in watching.of_type("tip.received")] == [1_000]
    published = await http.post(
        "/api/v1/notifications",
        json={"user_id": creator, "type": "stream.started"},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "s1"},
    )
    assert published.status_code == 201
    await watching.wait_for("app.stream.started")

    # the same ids under the deployment's secret are the default app's users, not these
    theirs = await http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {fan_token}"})
    other = await http.get("/api/v1/wallet", headers=auth(fan, "fan"))
    assert theirs.status_code == other.status_code == 200
    assert theirs.json()["user_id"] == other.json()["user_id"] == fan
    assert {b["currency"]: b["balance"] for b in theirs.json()["balances"]}["NGN"] == 9_000
    assert {b["currency"]: b["balance"] for b in other.json()["balances"]}["NGN"] == 0
    wrong_key = signed(JWT_SECRET, "HS256", {"sub": fan, "role": "fan", "iss": issuer})
    refused = await http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {wrong_key}"})
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "the token's signature is not valid"
    assert (await http.get("/api/v1/wallet", headers=auth(uid("fan"), "fan"))).status_code == 200


async def test_an_apps_tokens_from_its_identity_provider_by_jwks(http, live, sessions, uid) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    published: list[dict[str, Any]] = []

    def publish(private: Any, kid: str, alg: str) -> None:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
        published.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})

    fetches: list[float] = []

    async def jwks(request: Request) -> JSONResponse:
        fetches.append(time.monotonic())
        return JSONResponse({"keys": published})

    publish(ec_key, "ec-1", "ES256")
    publish(rsa_key, "rsa-1", "RS256")
    provider = LiveServer(Starlette(routes=[Route("/.well-known/jwks.json", jwks)]))
    await provider.start()
    try:
        _, issuer = await app_with_tokens(
            sessions, jwks_url=f"{provider.url}/.well-known/jwks.json"
        )
        # a node reads apps' token settings again for an unknown issuer at most once a second
        await asyncio.sleep(Verifiers.UNKNOWN_ISSUER_REFRESH)
        user = uid("idp-user")
        for private, alg, kid in ((ec_key, "ES256", "ec-1"), (rsa_key, "RS256", "rsa-1")):
            bearer = signed(private, alg, {"sub": user, "role": "fan", "iss": issuer}, kid)
            me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {bearer}"})
            assert me.status_code == 200, me.text
        assert len(fetches) == 1  # the set is fetched once and kept

        # a key the set does not hold: refused, and fetched again only after a while
        rotated = ec.generate_private_key(ec.SECP256R1())
        fresh = signed(rotated, "ES256", {"sub": user, "role": "fan", "iss": issuer}, "ec-2")
        unknown = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {fresh}"})
        assert unknown.status_code == 401
        assert unknown.json()["error"]["message"] == "the token's key ec-2 is not published"
        publish(rotated, "ec-2", "ES256")  # the provider rotates
        await asyncio.sleep(JWKS_REFETCH_AFTER + 0.2)
        after = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {fresh}"})
        assert after.status_code == 200, after.text
        # a token signed with HS256 and the public key as its secret (alg confusion): refused
        confused = jwt.encode(
            {"sub": user, "role": "fan", "iss": issuer, "exp": int(time.time()) + 60},
            "x" * 32,
            algorithm="HS256",
            headers={"kid": "ec-1"},
        )
        assert (
            await http.get("/api/v1/me", headers={"Authorization": f"Bearer {confused}"})
        ).status_code == 401
    finally:
        await provider.stop()


async def test_an_apps_issuer_is_its_own(sessions) -> None:
    """Two apps cannot share an issuer, and the default app's tokens are the settings'."""
    from ledger.errors import LedgerError

    _, issuer = await app_with_tokens(sessions, secret=SECRET)
    other = f"app-{uuid.uuid4().hex[:10]}"
    async with unit_of_work(sessions) as uow:
        await create_app(uow.session, other, "Other")
    with pytest.raises(LedgerError, match="names another app"):
        async with unit_of_work(sessions) as uow:
            await set_tokens(uow.session, other, issuer, secret=SECRET)
    with pytest.raises(LedgerError, match="settings"):
        async with unit_of_work(sessions) as uow:
            await set_tokens(uow.session, "default", "x", secret=SECRET)
    with pytest.raises(LedgerError, match="one of them"):
        async with unit_of_work(sessions) as uow:
            await set_tokens(uow.session, other, "y")
    assert token("someone", "fan")  # the default app's tokens are untouched


async def test_another_apps_admins_and_fans_reach_nothing_of_the_deployment(
    http, sessions, uid
) -> None:
    """An app's admin is not the deployment's (the admin routes are the operators'), and an
    app's fan neither reads nor buys another app's pay-per-view."""
    app_id, issuer = await app_with_tokens(sessions, secret=SECRET)
    await asyncio.sleep(Verifiers.UNKNOWN_ISSUER_REFRESH)
    admin = signed(SECRET, "HS256", {"sub": uid("acme-admin"), "role": "admin", "iss": issuer})
    as_admin = {"Authorization": f"Bearer {admin}"}
    for path in (
        "/api/v1/admin/platform-fee",
        "/api/v1/admin/analytics/revenue",
        "/api/v1/admin/jobs/failed",
        "/api/v1/presence",
    ):
        refused = await http.get(path, headers=as_admin)
        assert refused.status_code == 403, path
    creator = uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    made = await http.post(
        "/api/v1/content",
        json={"title": "Behind the scenes", "price": 500, "currency": "NGN", "body": "secret"},
        headers=auth(creator, "creator"),
    )
    assert made.status_code == 201, made.text
    content = made.json()["id"]
    fan = uid("acme-fan")
    fan_token = signed(SECRET, "HS256", {"sub": fan, "role": "fan", "iss": issuer})
    async with unit_of_work(sessions) as uow:
        from ledger.accounts import ensure_user

        await ensure_user(
            uow.session, stored_id(app_id, fan), Role.FAN, ("NGN", "USD"), app_id=app_id
        )
        await fund_wallet_for_development(
            uow.session, stored_id(app_id, fan), Money(10_000, "NGN"), reference=f"funding:{fan}"
        )
    as_fan = {"Authorization": f"Bearer {fan_token}"}
    assert (await http.get(f"/api/v1/content/{content}", headers=as_fan)).status_code == 404
    bought = await http.post(
        f"/api/v1/content/{content}/purchase",
        headers={**as_fan, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert bought.status_code == 404 and bought.json()["error"]["type"] == "content_not_found"
    # the default app's fan still reads and buys it
    default_fan = uid("fan")
    await create_user(sessions, default_fan, Role.FAN, fund=Money(5_000, "NGN"))
    ok = await http.post(
        f"/api/v1/content/{content}/purchase",
        headers={**auth(default_fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert ok.status_code == 201, ok.text


async def test_one_user_id_in_two_apps_is_two_users(http, live, sessions, sockets, uid) -> None:
    """A user id is unique within its app: the default app's user "x" and another app's user "x"
    are two users, each with their own money and their own log, over HTTP and sockets."""
    app_id, issuer = await app_with_tokens(sessions, secret=SECRET)
    await asyncio.sleep(Verifiers.UNKNOWN_ISSUER_REFRESH)
    shared = uid("fan")
    await create_user(sessions, shared, Role.FAN, fund=Money(5_000, "NGN"))  # the default app's
    theirs = signed(SECRET, "HS256", {"sub": shared, "role": "fan", "iss": issuer})
    follower = sockets()
    await follower.connect(live.url, {"token": theirs, "last_event_id": 0})
    [outcome] = await follower.wait_for("recovered")
    assert outcome == {"recovered": True, "missed": 0, "last_event_id": 0}  # not the funding's
    wallet = await http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {theirs}"})
    assert wallet.status_code == 200 and wallet.json()["user_id"] == shared
    assert {b["currency"]: b["balance"] for b in wallet.json()["balances"]}["NGN"] == 0
    async with unit_of_work(sessions) as uow:
        await fund_wallet_for_development(
            uow.session, stored_id(app_id, shared), Money(700, "NGN"), reference=uid("funding")
        )
    [updated] = await follower.wait_for("balance.updated")
    assert updated["data"]["balance"] == 700
    default = await http.get("/api/v1/wallet", headers=auth(shared, "fan"))
    assert {b["currency"]: b["balance"] for b in default.json()["balances"]}["NGN"] == 5_000
    async with sessions() as session:
        from sqlalchemy import text

        owners = (
            await session.execute(
                text("SELECT app_id FROM users WHERE id = ANY(:ids) ORDER BY app_id"),
                {"ids": [shared, stored_id(app_id, shared)]},
            )
        ).scalars()
        assert sorted(owners) == sorted([app_id, "default"])
