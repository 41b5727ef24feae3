"""Hostile input, replayed as it was found (issue 12) through the real entry points: each case is
a clear 4xx in the error shape, or a refused connection, with nothing stored and nothing logged
above INFO (the access line is the one line a refused request leaves)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import jwt
import pytest
import socketio
from sqlalchemy import text

from hub.auth import issue_token
from ledger.accounts import Role
from ledger.money import Money
from tests.conftest import (
    JWT_SECRET,
    NGINX,
    LiveServer,
    auth,
    balancer,
    create_user,
    hub_server,
    make_settings,
    token,
)
from tests.money import key

WEBHOOK_LIMIT = 1024 * 1024  # the defaults
API_LIMIT = 256 * 1024


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """After the test: no record above INFO from anywhere (no traceback, no warning)."""
    caplog.set_level(logging.INFO)
    return caplog


def nothing_logged(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage()[:200] for r in loud]


async def exchange(
    port: int, head: bytes, chunks: Sequence[bytes] = (), *, timeout: float = 10
) -> tuple[int, dict[str, Any], int]:
    """Write a raw request (its head, then `chunks` one by one while the server has not
    answered) and read the answer: (status, JSON body, bytes of `chunks` written)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    written = 0
    try:
        writer.write(head)
        await writer.drain()
        answer = asyncio.create_task(reader.read(1 << 20))
        for chunk in chunks:
            if answer.done():
                break
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
            written += len(chunk)
            await asyncio.sleep(0)
        raw = await asyncio.wait_for(answer, timeout)
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length(raw):
            more = await asyncio.wait_for(reader.read(1 << 20), timeout)
            if not more:
                break
            raw += more
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1])
    body = raw.split(b"\r\n\r\n", 1)[1]
    return status, json.loads(body) if body else {}, written


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(total: int, size: int = 64 * 1024) -> list[bytes]:
    piece = b"x" * size
    frame = b"%x\r\n%s\r\n" % (size, piece)
    return [frame] * (total // size)


def error_type(body: dict[str, Any]) -> str:
    assert set(body) == {"error"} and {"type", "message", "param"} <= set(body["error"]), body
    return str(body["error"]["type"])


# 1. Request bodies are limited per route class, before they are read.


async def test_an_unsigned_300_mb_webhook_is_refused_from_its_content_length(live, quiet) -> None:
    status, body, _ = await exchange(
        live.port,
        head(
            "POST",
            "/webhooks/paystack",
            {"Content-Type": "application/json", "Content-Length": str(300 * 1024 * 1024)},
        ),
        chunked(4 * 1024 * 1024),  # what a client sends on: the answer comes before it matters
    )
    assert status == 413 and error_type(body) == "payload_too_large"
    nothing_logged(quiet)


async def test_a_chunked_webhook_past_the_limit_is_cut_at_the_limit(live, quiet) -> None:
    status, body, written = await exchange(
        live.port,
        head("POST", "/webhooks/stripe", {"Transfer-Encoding": "chunked"}),
        chunked(64 * WEBHOOK_LIMIT),  # 64 MB offered
    )
    assert status == 413 and error_type(body) == "payload_too_large"
    # The server answered long before 64 MB: at the limit, plus what the sockets buffered.
    assert written < 16 * WEBHOOK_LIMIT
    nothing_logged(quiet)


async def test_ten_megabytes_to_tips_are_refused_and_nothing_is_stored(
    live, http, people, quiet
) -> None:
    headers = {
        **auth(people.fan, "fan"),
        **key(),
        "Content-Type": "application/json",
    }
    declared = await exchange(
        live.port,
        head("POST", "/api/v1/tips", {**headers, "Content-Length": str(10 * 1024 * 1024)}),
    )
    streamed = await exchange(
        live.port,
        head("POST", "/api/v1/tips", {**headers, "Transfer-Encoding": "chunked"}),
        chunked(10 * 1024 * 1024),
    )
    for status, body, _ in (declared, streamed):
        assert status == 413 and error_type(body) == "payload_too_large"
    sent = await http.get("/api/v1/tips?direction=sent", headers=auth(people.fan, "fan"))
    assert sent.json()["data"] == []
    nothing_logged(quiet)


async def test_a_client_that_writes_its_whole_body_first_reads_the_413(http, people) -> None:
    """httpx sends all of a request before it reads the answer: the node answers at once, then
    reads and drops the rest (lingering, as nginx does) instead of resetting the connection."""
    response = await http.post(
        "/api/v1/tips",
        content=b"x" * (10 * 1024 * 1024),
        headers={**auth(people.fan, "fan"), **key()},
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"
    assert (await http.get("/healthz")).status_code == 200  # a new connection, as asked


async def test_a_socket_polling_body_is_limited_like_the_rest(live, quiet) -> None:
    status, body, _ = await exchange(
        live.port,
        head(
            "POST",
            "/socket.io/?EIO=4&transport=polling&sid=x",
            {"Content-Type": "text/plain", "Content-Length": str(5 * 1024 * 1024)},
        ),
    )
    assert status == 413 and error_type(body) == "payload_too_large"


async def test_a_body_within_the_limit_is_read_and_answered(http, people) -> None:
    message = "😀" * 280
    response = await http.post(
        "/api/v1/tips",
        content=json.dumps(
            {"creator_id": people.creator, "amount": 100, "currency": "NGN", "message": message}
        ),  # ensure_ascii: 280 emoji as \ud83d\ude00 escapes
        headers={**auth(people.fan, "fan"), **key()},
    )
    assert response.status_code == 201, response.text
    assert response.json()["message"] == message


# 2. A body full of unknown keys is refused at the first, without building an error per key.


async def test_thousands_of_unknown_fields_are_refused_at_the_first(http, people, quiet) -> None:
    body = {"creator_id": people.creator, "amount": 100, "currency": "NGN"}
    body.update({f"junk{i}": i for i in range(9_000)})
    response = await http.post(
        "/api/v1/tips",
        content=json.dumps(body, separators=(",", ":")),
        headers={**auth(people.fan, "fan"), **key()},
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "junk0"
    # Past HUB_JSON_MAX_VALUES (10,000) the body is not even parsed.
    body.update({f"junk{i}": i for i in range(9_000, 12_000)})
    raw = json.dumps(body, separators=(",", ":"))
    assert len(raw) < API_LIMIT
    response = await http.post(
        "/api/v1/tips", content=raw, headers={**auth(people.fan, "fan"), **key()}
    )
    assert response.status_code == 400
    assert "more than 10000 values" in response.json()["error"]["message"]
    nothing_logged(quiet)


async def test_a_request_head_or_url_too_large_is_refused_by_the_server(live, quiet) -> None:
    status, body, _ = await exchange(
        live.port, head("GET", "/healthz", {"X-Padding": "p" * 64 * 1024})
    )
    assert status == 431 and error_type(body) == "request_head_too_large"
    status, body, _ = await exchange(live.port, head("GET", "/healthz?" + "q" * 9000, {}))
    assert status == 414 and error_type(body) == "uri_too_long"
    # One long URL chunk past the head limit is the head limit's to answer.
    status, body, _ = await exchange(live.port, head("GET", "/healthz?" + "q" * 40_000, {}))
    assert status == 431
    assert (await exchange(live.port, head("GET", "/healthz?" + "q" * 7000, {})))[0] == 200


# 4. What answered 500 with a traceback.

INT64_OVER = str(2**63)
DEEP = "[" * 100_000 + "]" * 100_000


def _cases() -> list[Any]:
    """(method, path, body or None, role, status, error type, param)."""
    tip = {"creator_id": "{creator}", "amount": 100, "currency": "NGN"}
    return [
        (
            "POST",
            "/api/v1/tips",
            {**tip, "message": "hi\u0000"},
            "fan",
            422,
            "invalid_request",
            "message",
        ),
        (
            "POST",
            "/api/v1/tips",
            {**tip, "creator_id": "c\u0000"},
            "fan",
            422,
            "invalid_request",
            "creator_id",
        ),
        (
            "POST",
            "/api/v1/tips",
            {**tip, "message": "\ud800"},
            "fan",
            422,
            "invalid_request",
            "message",
        ),
        (
            "POST",
            "/api/v1/content",
            {"title": "t\u0000", "price": 5, "currency": "NGN"},
            "creator",
            422,
            "invalid_request",
            "title",
        ),
        (
            "POST",
            "/api/v1/overlay-keys",
            {"label": "\u0000"},
            "creator",
            422,
            "invalid_request",
            "label",
        ),
        ("GET", "/api/v1/transactions?kind=%00", None, "fan", 422, "invalid_request", "kind"),
        (
            "GET",
            "/api/v1/transactions?currency=NG%00",
            None,
            "fan",
            422,
            "invalid_request",
            "currency",
        ),
        ("GET", "/checkout/return?reference=%00", None, None, 422, "invalid_request", "reference"),
        ("GET", "/api/v1/creators/%00", None, "fan", 422, "invalid_request", "path"),
        ("GET", "/api/v1/creators/a%0Ab/content", None, "fan", 422, "invalid_request", "path"),
        (
            "GET",
            f"/api/v1/payments/{INT64_OVER}",
            None,
            "fan",
            404,
            "payment_not_found",
            "payment_id",
        ),
        (
            "GET",
            f"/api/v1/payouts/{INT64_OVER}",
            None,
            "creator",
            404,
            "payout_not_found",
            "payout_id",
        ),
        (
            "GET",
            f"/api/v1/content/{INT64_OVER}",
            None,
            "fan",
            404,
            "content_not_found",
            "content_id",
        ),
        (
            "POST",
            f"/api/v1/content/{INT64_OVER}/purchase",
            None,
            "fan",
            404,
            "content_not_found",
            "content_id",
        ),
        (
            "DELETE",
            f"/api/v1/overlay-keys/{INT64_OVER}",
            None,
            "creator",
            404,
            "overlay_key_not_found",
            "key_id",
        ),
        (
            "POST",
            f"/api/v1/overlay-keys/{INT64_OVER}/rotate",
            None,
            "creator",
            404,
            "overlay_key_not_found",
            "key_id",
        ),
        ("GET", "/api/v1/payments/1_0", None, "fan", 404, "payment_not_found", "payment_id"),
        ("GET", f"/api/v1/tips?before={INT64_OVER}", None, "fan", 422, "invalid_request", "before"),
        ("GET", "/api/v1/transactions?before=-1", None, "fan", 422, "invalid_request", "before"),
        (
            "GET",
            "/api/v1/creators/{creator}/content?limit=1e3",
            None,
            "fan",
            422,
            "invalid_request",
            "limit",
        ),
        (
            "POST",
            "/api/v1/refunds",
            {"payment_id": 2**63},
            "admin",
            422,
            "invalid_request",
            "payment_id",
        ),
        ("POST", "/api/v1/tips", DEEP, "fan", 400, "invalid_json", None),
        ("POST", "/api/v1/tips", "[" * 5_000, "fan", 400, "invalid_json", None),
        (
            "POST",
            "/api/v1/tips",
            '{"a":[' + "[" * 31 + "]" * 31 + "]}",
            "fan",
            400,
            "invalid_json",
            None,
        ),
        ("POST", "/api/v1/tips", b'{"message":"\xff"}', "fan", 400, "invalid_json", None),
        ("POST", "/api/v1/tips", '{"a":' * 40 + "1" + "}" * 40, "fan", 400, "invalid_json", None),
        (
            "POST",
            "/api/v1/tips",
            '{"amount": ' + "9" * 5000 + "}",
            "fan",
            400,
            "invalid_json",
            None,
        ),
        ("POST", "/api/v1/tips", '{"amount": NaN}', "fan", 400, "invalid_json", None),
        ("POST", "/api/v1/tips", '{"amount": 1e999}', "fan", 400, "invalid_json", None),
        (
            "GET",
            "/api/v1/wallet?as_of=9999-12-31T23:59:59-14:00",
            None,
            "fan",
            422,
            "invalid_request",
            "as_of",
        ),
        (
            "GET",
            "/api/v1/wallet?as_of=0001-01-01T00:00:00%2B14:00",
            None,
            "fan",
            422,
            "invalid_request",
            "as_of",
        ),
        (
            "GET",
            "/api/v1/admin/analytics/revenue?to=9999-12-31",
            None,
            "admin",
            422,
            "invalid_request",
            "to",
        ),
        (
            "GET",
            "/api/v1/admin/analytics/payments?from=0001-01-01",
            None,
            "admin",
            422,
            "invalid_request",
            "from",
        ),
        (
            "POST",
            "/api/v1/admin/jobs/failed/99999999999999999999/retry",
            None,
            "admin",
            404,
            "failed_job_not_found",
            "failed_id",
        ),
    ]


@pytest.mark.parametrize(("method", "path", "body", "role", "status", "type_", "param"), _cases())
async def test_what_was_a_500_is_a_clear_4xx(
    http, people, quiet, method, path, body, role, status, type_, param
) -> None:
    headers = {**key()}
    if role is not None:
        user = people.creator if role == "creator" else people.fan if role == "fan" else "ops"
        headers.update(auth(user, role))
    path = path.replace("{creator}", people.creator)
    if isinstance(body, dict):
        content = json.dumps(body).replace("{creator}", people.creator)
    else:
        content = body
    response = await http.request(method, path, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert error_type(response.json()) == type_
    assert response.json()["error"]["param"] == param
    nothing_logged(quiet)


async def test_the_key_of_a_tip_goes_through_the_gate_too(http, people, quiet) -> None:
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": "k\tK"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"
    nothing_logged(quiet)


async def test_a_token_cannot_carry_a_nul_into_the_database(http, quiet) -> None:
    """Tokens are the platform's to sign, but what they say of a user is checked all the same."""
    for claims in ({"sub": "fan\u0000"}, {"name": "A\u0000"}, {"email": "a\u0000@b.c"}):
        signed = issue_token(JWT_SECRET, "fan-ok", Role.FAN, 60)
        payload = {**jwt.decode(signed, JWT_SECRET, algorithms=["HS256"]), **claims}
        forged = jwt.encode(payload, JWT_SECRET, algorithm="HS256")
        response = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401, (claims, response.text)
        assert response.json()["error"]["type"] == "invalid_token"
    nothing_logged(quiet)


# 5. Idempotency references cannot collide across users.


async def test_two_users_whose_id_and_key_join_alike_both_tip(http, sessions, uid, people) -> None:
    first = uid("a")
    second = f"{first}:b"
    for fan in (first, second):
        await create_user(sessions, fan, Role.FAN, fund=Money(10_000, "NGN"))
    answers = []
    for fan, idempotency_key in ((first, "b:K"), (second, "K")):
        response = await http.post(
            "/api/v1/tips",
            json={"creator_id": people.creator, "amount": 500, "currency": "NGN"},
            headers={**auth(fan, "fan"), "Idempotency-Key": idempotency_key},
        )
        assert response.status_code == 201, response.text
        answers.append(response.json())
    assert answers[0]["id"] != answers[1]["id"]
    async with sessions() as session:
        references = (
            (
                await session.execute(
                    text("SELECT reference FROM transfers WHERE id = ANY(:ids) ORDER BY id"),
                    {"ids": [a["id"] for a in answers]},
                )
            )
            .scalars()
            .all()
        )
    assert references == [f"key:tip:{len(first)}:{first}:b:K", f"key:tip:{len(second)}:{second}:K"]


# 7. last_event_id on a socket connect.


@pytest.mark.parametrize(
    "value", [2**70, 2**63, float("inf"), "Infinity", 1.5, True, -1, "1e3", [1]]
)
async def test_a_socket_with_a_last_event_id_out_of_range_is_refused(
    live, people, quiet, value
) -> None:
    fan = {"token": token(people.fan, "fan"), "last_event_id": value}
    assert await refusal(live.url, fan) == "invalid_request"
    nothing_logged(quiet)


@pytest.mark.parametrize("value", [2**63 - 1, str(2**63 - 1), 0, "0"])
async def test_the_ends_of_the_range_are_valid_positions(live, people, value) -> None:
    client = await connect(live.url, {"token": token(people.fan, "fan"), "last_event_id": value})
    assert client.connected
    await client.disconnect()


# The concerns: sockets and tokens, origins, overlays, headers, demo sign-in, proxies.


@pytest.fixture(scope="module")
async def strict(services) -> AsyncIterator[LiveServer]:
    """A node configured as production would be: its public URL on https, an origin list,
    small caps, and only 127.0.0.2 trusted as a proxy (demo sign-in on, to watch who the node
    thinks the client is)."""
    server = hub_server(
        make_settings(
            services,
            "http://127.0.0.1:9",  # providers configured (a webhook reaches its signature check)
            public_url="https://hub.example.com",
            cors_origins="https://app.example.com,http://localhost:*",
            socket_max_connections_per_overlay_key=2,
            overlay_keys_per_creator=3,
            trusted_proxies="127.0.0.2",
            dev_signin=True,
            rate_limit_webhooks="3/minute",
        )
    )
    await server.start()
    yield server
    await server.stop()


async def refusal(url: str, auth_: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    """Connect, expecting a refusal; its error type ("" when the handshake itself was refused)."""
    client = socketio.AsyncClient(reconnection=False)
    seen: list[Any] = []
    client.on("connect_error", seen.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            url, auth=auth_, headers=headers or {}, transports=["websocket"], wait_timeout=5
        )
    await client.disconnect()
    reason = seen[0] if seen and isinstance(seen[0], dict) else {}
    return str((reason.get("data") or {}).get("type", ""))


async def connect(
    url: str, auth_: dict[str, Any], headers: dict[str, str] | None = None
) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        url, auth=auth_, headers=headers or {}, transports=["websocket"], wait_timeout=5
    )
    return client


async def test_a_socket_is_closed_when_its_token_expires(live, people) -> None:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    closed = asyncio.Event()
    client.on("hub.error", errors.append)
    client.on("disconnect", lambda *args: closed.set())
    await client.connect(
        live.url,
        auth={"token": issue_token(JWT_SECRET, people.fan, Role.FAN, 2)},
        transports=["websocket"],
        wait_timeout=5,
    )
    await asyncio.wait_for(closed.wait(), 10)
    assert errors and errors[0]["error"]["type"] == "token_expired"
    # A fresh token connects again at once.
    again = await connect(live.url, {"token": token(people.fan, "fan")})
    assert again.connected
    await again.disconnect()


async def test_a_token_that_lives_longer_than_the_setting_is_refused(live, http, people) -> None:
    long = issue_token(JWT_SECRET, people.fan, Role.FAN, 2 * 24 * 3600)
    response = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {long}"})
    assert response.status_code == 401
    assert "lives longer" in response.json()["error"]["message"]
    assert await refusal(live.url, {"token": long}) == "invalid_token"


async def test_socket_origins_are_an_allow_list(strict, people) -> None:
    fan = {"token": token(people.fan, "fan")}
    for origin in ("https://evil.example", "http://hub.example.com", "null"):
        assert await refusal(strict.url, fan, {"Origin": origin}) == ""
    for origin in ("https://hub.example.com", "https://app.example.com", "http://localhost:5173"):
        client = await connect(strict.url, fan, {"Origin": origin})
        assert client.connected, origin
        await client.disconnect()
    without = await connect(strict.url, fan)  # not a browser: no Origin to check
    await without.disconnect()


async def test_no_origin_is_told_it_may_send_credentials(strict) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{strict.url}/socket.io/?EIO=4&transport=polling",
            headers={"Origin": "https://app.example.com"},
        )
    assert "access-control-allow-credentials" not in response.headers


async def test_overlay_keys_are_capped_per_creator_and_sockets_per_key(strict, people) -> None:
    creator = auth(people.creator, "creator")
    async with httpx.AsyncClient(base_url=strict.url) as client:
        keys = [
            (await client.post("/api/v1/overlay-keys", json={}, headers=creator)) for _ in range(4)
        ]
        assert [k.status_code for k in keys] == [201, 201, 201, 409]
        assert keys[3].json()["error"]["type"] == "too_many_overlay_keys"
        # Rotating keeps the count; revoking frees a place.
        first = keys[0].json()
        rotated = await client.post(f"/api/v1/overlay-keys/{first['id']}/rotate", headers=creator)
        assert rotated.status_code == 201
        assert (
            await client.delete(f"/api/v1/overlay-keys/{rotated.json()['id']}", headers=creator)
        ).status_code == 200
        assert (
            await client.post("/api/v1/overlay-keys", json={}, headers=creator)
        ).status_code == 201
    overlay = {"overlay_key": keys[1].json()["key"]}
    live_ones = [await connect(strict.url, overlay) for _ in range(2)]
    assert await refusal(strict.url, overlay) == "too_many_connections"
    await live_ones[0].disconnect()
    for _ in range(50):  # the node counts the closed one out
        try:
            replacement = await connect(strict.url, overlay)
            break
        except socketio.exceptions.ConnectionError:
            await asyncio.sleep(0.1)
    await replacement.disconnect()
    await live_ones[1].disconnect()


async def test_viewing_names_only_a_creator_that_exists(live, people, uid) -> None:
    fan = token(people.fan, "fan")
    for viewing in (uid("nobody"), people.fan, "c\u0000", 5):
        refused = await refusal(live.url, {"token": fan, "viewing": viewing})
        assert refused in ("creator_not_found", "invalid_request"), viewing
    client = await connect(live.url, {"token": fan, "viewing": people.creator})
    await client.disconnect()


async def test_hsts_over_https_and_no_store_on_authenticated_answers(strict, live, people) -> None:
    async with httpx.AsyncClient() as client:
        secure = await client.get(f"{strict.url}/healthz")
        assert secure.headers["strict-transport-security"].startswith("max-age=")
        plain = await client.get(f"{live.url}/healthz")
        assert "strict-transport-security" not in plain.headers
        assert "cache-control" not in plain.headers
        wallet = await client.get(f"{live.url}/api/v1/wallet", headers=auth(people.fan, "fan"))
        assert wallet.headers["cache-control"] == "no-store"
        refused = await client.get(
            f"{live.url}/api/v1/wallet", headers={"Authorization": "Bearer x"}
        )
        assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"


async def test_demo_sign_in_checks_host_and_origin(strict) -> None:
    async with httpx.AsyncClient(base_url=strict.url) as client:
        assert (await client.get("/app/dev/users")).status_code == 200
        for headers in (
            {"Host": "evil.example"},
            {"Host": "evil.example:80"},
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
        ):
            response = await client.get("/app/dev/users", headers=headers)
            assert response.status_code == 404, headers
            token_answer = await client.post(
                "/app/dev/token", json={"user_id": "demo-fan-1"}, headers=headers
            )
            assert token_answer.status_code == 404, headers
        ok = await client.get(
            "/app/dev/users", headers={"Host": "localhost:1", "Origin": "http://127.0.0.1:9"}
        )
        assert ok.status_code == 200


def _from(address: str, base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base, transport=httpx.AsyncHTTPTransport(local_address=address)
    )


async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(strict) -> None:
    # A client on 127.0.0.1 (not a trusted proxy) writes whatever it likes: it is ignored,
    # and the node still sees loopback (demo sign-in answers).
    async with _from("127.0.0.1", strict.url) as client:
        spoofed = await client.get("/app/dev/users", headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 200
    # The trusted proxy (127.0.0.2) says the peer it saw was 203.0.113.7, after whatever that
    # client wrote itself (127.0.0.1): the client is 203.0.113.7, so no demo sign-in.
    async with _from("127.0.0.2", strict.url) as proxy:
        forwarded = {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}
        assert (await proxy.get("/app/dev/users", headers=forwarded)).status_code == 404
        assert (await proxy.get("/app/config.json", headers=forwarded)).json()[
            "dev_signin"
        ] is False


@pytest.mark.skipif(NGINX is None, reason="nginx not installed (Debian package nginx-light)")
async def test_behind_the_shipped_balancer_a_client_cannot_choose_its_address(
    strict, tmp_path, services
) -> None:
    """deploy/nginx.conf in front of a node that trusts only nginx's address: rotating
    X-Forwarded-For does not escape the per-IP webhook limit (3 a minute here)."""
    async with (
        balancer(tmp_path, strict.port, bind="127.0.0.2") as url,
        _from("127.0.0.3", url) as client,
    ):
        statuses = []
        for n in range(5):
            response = await client.post(
                "/webhooks/paystack", content=b"{}", headers={"X-Forwarded-For": f"198.51.100.{n}"}
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429, 429]


async def test_the_sandbox_links_back_only_to_http_urls(sandbox) -> None:
    for callback, linked in (
        ("javascript:alert(document.domain)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("http://127.0.0.1:9/checkout/return\n", False),
        ("http://127.0.0.1:9/checkout/return", True),
    ):
        created = await sandbox.post(
            "/sandbox/payments",
            json={
                "reference": uuid.uuid4().hex,
                "amount": 100,
                "currency": "NGN",
                "callback_url": callback,
            },
        )
        assert created.status_code == 200, created.text
        checkout = httpx.URL(created.json()["checkout_url"])
        page = await sandbox.post(f"{checkout.path}/pay")
        assert ("Back to the merchant" in page.text) is linked, callback
        assert "javascript:" not in page.text and "data:text" not in page.text
