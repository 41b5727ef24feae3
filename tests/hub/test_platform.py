"""The server API as a platform's backend meets it: API keys, notifications into users' logs
and creators' channels (live on sockets, recovered by cursor, paged over HTTP), users,
presence, disconnect; and two apps on one deployment that never see each other."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import socketio
from sqlalchemy import text

from ledger.accounts import Role
from ledger.apps import Scope, create_app, create_key, revoke_key, rotate_key
from ledger.db import unit_of_work
from tests.conftest import auth, create_user, token


async def new_key(sessions, app_id: str = "default", *scopes: Scope) -> str:
    async with unit_of_work(sessions) as uow:
        _, secret = await create_key(
            uow.session, app_id, scopes or (Scope.PUBLISH, Scope.READ, Scope.ADMIN)
        )
    return secret


async def new_app(sessions) -> str:
    app_id = f"app-{uuid.uuid4().hex[:12]}"
    async with unit_of_work(sessions) as uow:
        await create_app(uow.session, app_id, "Another platform")
    return app_id


def with_key(key: str, idempotency: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency is not None:
        headers["Idempotency-Key"] = idempotency
    return headers


async def notify(http: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await http.post(
        "/api/v1/notifications", json=body, headers=with_key(key, uuid.uuid4().hex)
    )


async def test_a_notification_reaches_a_socket_live_and_a_returning_one_recovers_it(
    http, live, sessions, sockets, uid
) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    key = await new_key(sessions)
    watching = sockets()
    await watching.connect(live.url, {"token": token(user, "fan")})
    [hello] = await watching.wait_for("recovered")

    response = await notify(http, key, user_id=user, type="follower.new", data={"name": "Ada"})
    assert response.status_code == 201, response.text
    [written] = response.json()["events"]
    assert response.json()["type"] == "app.follower.new"
    [live_event] = await watching.wait_for("app.follower.new")
    assert live_event["id"] == written["id"] and live_event["seq"] == written["seq"]
    assert live_event["data"] == {"name": "Ada"}

    second = await notify(http, key, user_id=user, type="call.started", data={"room": "r1"})
    assert second.status_code == 201
    back = sockets()
    await back.connect(live.url, {"token": token(user, "fan"), "last_event_id": written["id"]})
    [outcome] = await back.wait_for("recovered")
    assert outcome["recovered"] is True and outcome["missed"] == 1
    [missed] = back.of_type("app.call.started")
    assert missed["id"] == second.json()["events"][0]["id"]
    assert hello["recovered"] is True

    # the same log over HTTP, with the same cursor
    page = await http.get(
        "/api/v1/events", params={"user_id": user, "after": written["id"]}, headers=with_key(key)
    )
    assert page.status_code == 200, page.text
    assert [e["id"] for e in page.json()["data"]] == [missed["id"]]
    assert page.json()["data"][0] == missed  # what the socket sent, field for field


async def test_events_page_through_a_log_with_the_sockets_cursor(http, sessions, uid) -> None:
    user = uid("fan")
    key = await new_key(sessions, "default", Scope.PUBLISH, Scope.READ)
    ids = []
    for n in range(5):
        response = await notify(http, key, user_id=user, type="step", data={"n": n})
        assert response.status_code == 201  # a user the app names is made on first use
        ids.append(response.json()["events"][0]["id"])
    seen: list[int] = []
    after = 0
    while True:
        page = await http.get(
            "/api/v1/events",
            params={"user_id": user, "after": after, "limit": 2},
            headers=with_key(key),
        )
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [event["id"] for event in body["data"]]
        after = body["next_after"]
        if not body["has_more"]:
            break
    assert seen == ids
    assert [event["data"]["n"] for event in body["data"]] == [4]
    gone = await http.get(
        "/api/v1/events", params={"user_id": user, "after": 1}, headers=with_key(key)
    )
    assert gone.status_code == 410 and gone.json()["error"]["type"] == "cursor_expired"


async def test_a_notification_is_published_once_per_idempotency_key(http, sessions, uid) -> None:
    user = uid("fan")
    key = await new_key(sessions)
    body = {"user_id": user, "type": "reply", "data": {"text": "hi"}}
    first = await http.post("/api/v1/notifications", json=body, headers=with_key(key, "k-1"))
    again = await http.post("/api/v1/notifications", json=body, headers=with_key(key, "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = {**body, "data": {"text": "other"}}
    reused = await http.post("/api/v1/notifications", json=other, headers=with_key(key, "k-1"))
    assert reused.status_code == 422
    assert reused.json()["error"]["type"] == "idempotency_key_reused"
    async with sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM events WHERE user_id = :u"), {"u": user}
        )
    assert count == 1


async def test_platform_types_cannot_pass_for_hubs_own(http, sessions, uid) -> None:
    user = uid("fan")
    key = await new_key(sessions)
    imitation = await notify(http, key, user_id=user, type="tip.received", data={"amount": 1})
    assert imitation.status_code == 201
    assert imitation.json()["type"] == "app.tip.received"
    for bad in ("", "Tip", "a..b", "a.b.c.d.e", "x" * 65, "tip received"):
        refused = await notify(http, key, user_id=user, type=bad)
        assert refused.status_code == 422, bad
    both = await notify(http, key, user_id=user, channel=user, type="x")
    assert both.status_code == 422
    large = await notify(http, key, user_id=user, type="x", data={"blob": "a" * 17_000})
    assert large.status_code == 422 and large.json()["error"]["param"] == "data"


async def test_a_creators_channel_carries_the_platforms_public_notifications(
    http, live, sessions, sockets, uid
) -> None:
    creator, fan = uid("creator"), uid("fan")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN)
    key = await new_key(sessions)
    viewer = sockets()
    await viewer.connect(live.url, {"token": token(fan, "fan"), "viewing": creator})
    await viewer.wait_for("public.recovered")
    response = await notify(http, key, channel=creator, type="stream.live", data={"title": "Hi"})
    assert response.status_code == 201, response.text
    [event] = await viewer.wait_for("public.app.stream.live")
    assert event["channel"] == creator and event["data"] == {"title": "Hi"}
    assert event["id"] == response.json()["events"][0]["id"]
    # recovered by the public cursor like a tip
    later = await notify(http, key, channel=creator, type="stream.ended")
    back = sockets()
    await back.connect(
        live.url,
        {"token": token(fan, "fan"), "viewing": creator, "viewing_last_event_id": event["id"]},
    )
    [outcome] = await back.wait_for("public.recovered")
    assert outcome["recovered"] is True and outcome["missed"] == 1
    assert back.of_type("public.app.stream.ended")[0]["id"] == later.json()["events"][0]["id"]
    # only a creator has a channel
    fan_channel = await notify(http, key, channel=fan, type="x")
    assert fan_channel.status_code == 404
    assert fan_channel.json()["error"]["type"] == "creator_not_found"


async def test_keys_need_their_scope_and_die_when_revoked_or_rotated(http, sessions, uid) -> None:
    user = uid("fan")
    reader = await new_key(sessions, "default", Scope.READ)
    refused = await notify(http, reader, user_id=user, type="x")
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "insufficient_scope"
    assert (await notify(http, "hk_nothing", user_id=user, type="x")).status_code == 401
    jwt_caller = await http.post(
        "/api/v1/notifications",
        json={"user_id": user, "type": "x"},
        headers={**auth(user, "admin"), "Idempotency-Key": "j"},
    )
    assert jwt_caller.status_code == 401
    assert jwt_caller.json()["error"]["type"] == "invalid_api_key"
    assert (await http.post("/api/v1/notifications", json={})).status_code == 401

    # revoked before its first use: refused at once
    async with unit_of_work(sessions) as uow:
        record, secret = await create_key(uow.session, "default", (Scope.PUBLISH,))
        await revoke_key(uow.session, "default", record.id)
    revoked = await notify(http, secret, user_id=user, type="x")
    assert revoked.status_code == 401 and revoked.json()["error"]["type"] == "invalid_api_key"

    # rotated: the new key works; with no overlap the old one stops (a node that used it
    # in the last 5 s may take it until those are up: hub.keys.REMEMBERED)
    async with unit_of_work(sessions) as uow:
        old_record, old = await create_key(uow.session, "default", (Scope.PUBLISH,))
        _, new = await rotate_key(uow.session, "default", old_record.id, 0)
    assert (await notify(http, new, user_id=user, type="x")).status_code == 201
    assert (await notify(http, old, user_id=user, type="x")).status_code == 401
    # with an overlap, both work meanwhile
    async with unit_of_work(sessions) as uow:
        again_record, again = await create_key(uow.session, "default", (Scope.PUBLISH,))
        _, successor = await rotate_key(uow.session, "default", again_record.id, 3600)
    assert (await notify(http, again, user_id=user, type="x")).status_code == 201
    assert (await notify(http, successor, user_id=user, type="x")).status_code == 201


async def test_users_presence_and_disconnect(http, live, sessions, sockets, uid) -> None:
    key = await new_key(sessions)
    user = uid("creator")
    created = await http.put(
        f"/api/v1/users/{user}",
        json={"role": "creator", "name": "Cee", "email": "cee@example.com"},
        headers=with_key(key),
    )
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "creator" and created.json()["name"] == "Cee"
    updated = await http.put(
        f"/api/v1/users/{user}", json={"role": "creator", "name": "C"}, headers=with_key(key)
    )
    assert updated.status_code == 200 and updated.json()["name"] == "C"
    demoted = await http.put(f"/api/v1/users/{user}", json={"role": "fan"}, headers=with_key(key))
    assert demoted.status_code == 409
    # the user's accounts exist: their wallet reads before they ever called
    wallet = await http.get("/api/v1/wallet", headers=auth(user, "creator"))
    assert wallet.status_code == 200
    assert (await http.get(f"/api/v1/users/{user}", headers=with_key(key))).json()["name"] == "C"

    socket = sockets()
    await socket.connect(live.url, {"token": token(user, "creator")})
    await socket.wait_for("recovered")
    nobody = uid("fan")
    presence = await http.get(
        "/api/v1/presence", params=[("user_id", user), ("user_id", nobody)], headers=with_key(key)
    )
    assert presence.status_code == 200, presence.text
    assert presence.json()["users"] == [
        {"id": user, "connections": 1},
        {"id": nobody, "connections": 0},
    ]
    ended = await http.post(f"/api/v1/users/{user}/disconnect", headers=with_key(key))
    assert ended.status_code == 200 and ended.json()["connections"] == 1
    [error] = await socket.wait_for("hub.error")
    assert error["error"]["type"] == "disconnected"
    for _ in range(100):
        if not socket.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not socket.client.connected


async def test_two_apps_never_see_each_other(http, live, sessions, sockets, uid, people) -> None:
    """App B's key sees nothing of the default app's users, and the default app's tokens
    nothing of B's: through HTTP, sockets and money."""
    other = await new_app(sessions)
    theirs = await new_key(sessions, other)
    ours = await new_key(sessions)
    # B names a user and a creator of its own
    b_user, b_creator = uid("b-fan"), uid("b-creator")
    for user, role in ((b_user, "fan"), (b_creator, "creator")):
        made = await http.put(
            f"/api/v1/users/{user}", json={"role": role}, headers=with_key(theirs)
        )
        assert made.status_code == 201
    await notify(http, theirs, user_id=b_user, type="secret", data={"b": True})

    # B's key: the default app's users do not exist for it; an id they have names B's own user
    for path in (f"/api/v1/users/{people.fan}", f"/api/v1/users/{people.fan}/disconnect"):
        method = http.get if path.endswith(people.fan) else http.post
        assert (await method(path, headers=with_key(theirs))).status_code == 404
    page = await http.get(
        "/api/v1/events", params={"user_id": people.fan}, headers=with_key(theirs)
    )
    assert page.status_code == 404 and page.json()["error"]["type"] == "user_not_found"
    same_id = await notify(http, theirs, user_id=people.fan, type="b.only")
    assert same_id.status_code == 201 and same_id.json()["events"][0]["user_id"] == people.fan
    assert same_id.json()["events"][0]["seq"] == 1  # B's new user's log, not the default fan's
    ours_of_fan = await http.get(
        "/api/v1/events", params={"user_id": people.fan}, headers=with_key(ours)
    )
    assert "app.b.only" not in [e["type"] for e in ours_of_fan.json()["data"]]
    channel = await notify(http, theirs, channel=people.creator, type="x")
    assert channel.status_code == 404
    presence = await http.get(
        "/api/v1/presence", params={"user_id": people.fan}, headers=with_key(theirs)
    )
    assert presence.json()["users"] == [{"id": people.fan, "connections": 0}]
    # ... and the default app's key sees nothing of B's
    mine = await http.get("/api/v1/events", params={"user_id": b_user}, headers=with_key(ours))
    assert mine.status_code == 404

    # the default app's tokens: B's ids name the default app's users, over HTTP or a socket
    probe = sockets()
    await probe.connect(live.url, {"token": token(b_user, "fan"), "last_event_id": 0})
    [recovered] = await probe.wait_for("recovered")
    assert recovered == {"recovered": True, "missed": 0, "last_event_id": 0}
    as_b = await http.get("/api/v1/wallet", headers=auth(b_user, "fan"))
    assert as_b.status_code == 200 and as_b.json()["user_id"] == b_user
    await asyncio.sleep(0.3)
    assert probe.of_type("app.secret") == []
    viewer = sockets()
    reasons: list[Any] = []
    viewer.client.on("connect_error", lambda data: reasons.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await viewer.connect(live.url, {"token": token(people.fan, "fan"), "viewing": b_creator})
    assert reasons[0]["data"]["type"] == "creator_not_found"
    # no money crosses: a tip from the default app's fan to B's creator finds no creator
    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": b_creator, "amount": 100, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert tip.status_code == 404 and tip.json()["error"]["type"] == "creator_not_found"
    profile = await http.get(f"/api/v1/creators/{b_creator}", headers=auth(people.fan, "fan"))
    assert profile.status_code == 404


async def test_an_app_manages_its_keys_over_http(http, sessions, uid) -> None:
    admin = await new_key(sessions, "default", Scope.ADMIN)
    made = await http.post(
        "/api/v1/api-keys",
        json={"scopes": ["publish"], "label": "backend"},
        headers=with_key(admin),
    )
    assert made.status_code == 201, made.text
    secret, record = made.json()["secret"], made.json()
    assert secret.startswith(record["prefix"] + "_")
    user = uid("fan")
    assert (await notify(http, secret, user_id=user, type="x")).status_code == 201
    listed = await http.get("/api/v1/api-keys", headers=with_key(admin))
    assert record["id"] in [k["id"] for k in listed.json()["data"]]
    assert secret not in listed.text and "secret" not in listed.json()["data"][0]
    assert (await http.get("/api/v1/api-keys", headers=with_key(secret))).status_code == 403

    rotated = await http.post(
        f"/api/v1/api-keys/{record['id']}/rotate",
        json={"overlap_seconds": 600},
        headers=with_key(admin),
    )
    assert rotated.status_code == 201 and rotated.json()["scopes"] == ["publish"]
    successor = rotated.json()["secret"]
    for key in (secret, successor):  # both during the overlap
        assert (await notify(http, key, user_id=user, type="x")).status_code == 201
    again = await http.post(f"/api/v1/api-keys/{record['id']}/rotate", headers=with_key(admin))
    assert again.status_code == 409

    # another app's admin key sees and ends none of them
    other = await new_app(sessions)
    theirs = await new_key(sessions, other, Scope.ADMIN)
    foreign = await http.delete(
        f"/api/v1/api-keys/{rotated.json()['id']}", headers=with_key(theirs)
    )
    assert foreign.status_code == 404
    assert record["id"] not in [
        k["id"]
        for k in (await http.get("/api/v1/api-keys", headers=with_key(theirs))).json()["data"]
    ]
    fresh = await http.post("/api/v1/api-keys", json={"scopes": ["read"]}, headers=with_key(admin))
    ended = await http.delete(f"/api/v1/api-keys/{fresh.json()['id']}", headers=with_key(admin))
    assert ended.status_code == 200 and ended.json()["revoked_at"] is not None
    refused = await http.get(
        "/api/v1/events", params={"user_id": user}, headers=with_key(fresh.json()["secret"])
    )
    assert refused.status_code == 401


async def test_the_server_api_is_rate_limited_per_app(services, sessions, uid) -> None:
    """HUB_RATE_LIMIT_SERVER counts an app's calls, all its keys together; another app has its
    own allowance."""
    from tests.conftest import hub_server, make_settings

    server = hub_server(make_settings(services, rate_limit_server="3/minute"))
    await server.start()
    try:
        first, second = await new_key(sessions), await new_key(sessions)
        other = await new_key(sessions, await new_app(sessions))
        user = uid("fan")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            answers = [
                await client.get("/api/v1/presence", params={"user_id": user}, headers=with_key(k))
                for k in (first, second, first, second)
            ]
            elsewhere = await client.get(
                "/api/v1/presence", params={"user_id": user}, headers=with_key(other)
            )
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        assert answers[0].headers["ratelimit-limit"] == "3"
        assert answers[3].status_code == 429
        assert answers[3].json()["error"]["type"] == "rate_limited"
        assert elsewhere.status_code == 200
    finally:
        await server.stop()


async def test_a_ban_refuses_the_users_tokens_on_every_node_until_it_ends(
    http, live, services, sessions, sockets, uid
) -> None:
    """Banned through one node: the user's socket there is closed at once (hub.error
    `banned`), their token refused over HTTP and sockets (user_banned), on another node within
    Bans.REFRESH; lifted, it works again. Another app cannot ban them."""
    from hub.bans import Bans
    from tests.conftest import hub_server, make_settings

    key = await new_key(sessions)
    user = uid("fan")
    assert (await http.get("/api/v1/me", headers=auth(user, "fan"))).status_code == 200
    socket = sockets()
    await socket.connect(live.url, {"token": token(user, "fan")})
    await socket.wait_for("recovered")
    other = await new_key(sessions, await new_app(sessions))
    foreign = await http.post(
        f"/api/v1/users/{user}/ban", json={"seconds": 60}, headers=with_key(other)
    )
    assert foreign.status_code == 404
    bad = await http.post(f"/api/v1/users/{user}/ban", json={"seconds": 0}, headers=with_key(key))
    assert bad.status_code == 422

    second = hub_server(make_settings(services))
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as elsewhere:
            assert (await elsewhere.get("/api/v1/me", headers=auth(user, "fan"))).status_code == 200
            banned = await http.post(
                f"/api/v1/users/{user}/ban", json={"seconds": 60}, headers=with_key(key)
            )
            assert banned.status_code == 200, banned.text
            assert banned.json()["connections"] == 1 and banned.json()["banned_until"]
            [error] = await socket.wait_for("hub.error")
            assert error["error"]["type"] == "banned"
            refused = await http.get("/api/v1/me", headers=auth(user, "fan"))
            assert refused.status_code == 403
            assert refused.json()["error"]["type"] == "user_banned"
            shown = await http.get(f"/api/v1/users/{user}", headers=with_key(key))
            assert shown.json()["banned_until"] == banned.json()["banned_until"]
            deadline = asyncio.get_running_loop().time() + Bans.REFRESH + 5
            while (await elsewhere.get("/api/v1/me", headers=auth(user, "fan"))).status_code != 403:
                assert asyncio.get_running_loop().time() < deadline, "the other node never knew"
                await asyncio.sleep(0.2)
            reasons: list = []
            again = sockets()
            again.client.on("connect_error", lambda data: reasons.append(data))
            with pytest.raises(socketio.exceptions.ConnectionError):
                await again.connect(second.url, {"token": token(user, "fan")})
            assert reasons and reasons[0]["data"]["type"] == "user_banned"

            lifted = await http.delete(f"/api/v1/users/{user}/ban", headers=with_key(key))
            assert lifted.status_code == 200 and lifted.json()["banned_until"] is None
            assert (await http.get("/api/v1/me", headers=auth(user, "fan"))).status_code == 200
            deadline = asyncio.get_running_loop().time() + Bans.REFRESH + 5
            while (await elsewhere.get("/api/v1/me", headers=auth(user, "fan"))).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, "the other node kept it"
                await asyncio.sleep(0.2)
    finally:
        await second.stop()


async def test_hub_watch_stays_away_once_the_platform_bans_the_user(
    http, live, sessions, uid, capsys
) -> None:
    """`hub watch` (the CLI's socket client) stops with exit code 1 and says why when the
    platform ends the session, rather than reconnecting as it does after a cut connection."""
    from hub.watch import watch

    key = await new_key(sessions)
    user = uid("fan")
    assert (await http.get("/api/v1/me", headers=auth(user, "fan"))).status_code == 200
    watching = asyncio.create_task(watch(live.url, token(user, "fan"), label="w"))
    for _ in range(100):
        online = await http.get("/api/v1/presence", params={"user_id": user}, headers=with_key(key))
        if online.json()["users"][0]["connections"] == 1:
            break
        await asyncio.sleep(0.05)
    banned = await http.post(
        f"/api/v1/users/{user}/ban", json={"seconds": 60}, headers=with_key(key)
    )
    assert banned.status_code == 200 and banned.json()["connections"] == 1
    assert await asyncio.wait_for(watching, timeout=10) == 1
    printed = capsys.readouterr()
    assert '"type": "banned"' in printed.out
    assert "hub watch: the platform ended this session: banned by the platform until" in printed.err
    await http.delete(f"/api/v1/users/{user}/ban", headers=with_key(key))
