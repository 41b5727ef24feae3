"""Bad tokens are refused on both doors: HTTP (401 JSON) and Socket.IO (connect_error)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import socketio

from hub.auth import VERIFIED_KEPT, HS256Verifier
from tests.conftest import JWT_SECRET, LiveServer, token

BAD_TOKENS = {
    "malformed": "not-a-jwt",
    "wrong_signature": token("someone", "fan", secret="another-secret-" + "y" * 40),
    "expired": token("someone", "fan", ttl=-120),
    "unknown_role": __import__("jwt").encode(
        {"sub": "someone", "role": "root", "exp": 9_999_999_999}, JWT_SECRET, algorithm="HS256"
    ),
    "no_exp": __import__("jwt").encode({"sub": "someone", "role": "fan"}, JWT_SECRET, "HS256"),
    "alg_none": __import__("jwt").encode(
        {"sub": "someone", "role": "fan", "exp": 9_999_999_999}, None, algorithm="none"
    ),
}


@pytest.mark.parametrize("path", ["/api/v1/wallet"])
async def test_missing_token_is_401(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "missing_token"


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401_over_http(http: httpx.AsyncClient, name: str) -> None:
    response = await http.get(
        "/api/v1/wallet", headers={"Authorization": f"Bearer {BAD_TOKENS[name]}"}
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == ("token_expired" if name == "expired" else "invalid_token")
    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": "x", "amount": 1, "currency": "NGN"},
        headers={"Authorization": f"Bearer {BAD_TOKENS[name]}", "Idempotency-Key": "k"},
    )
    assert tip.status_code == 401


async def test_non_bearer_scheme_is_401(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/wallet", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


async def refused(live: LiveServer, auth: object) -> dict[str, object]:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[object] = []
    client.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(live.url, auth=auth, transports=["websocket"], wait_timeout=5)
    assert not client.connected
    assert errors, "the server gave no reason"
    reason = errors[0]
    assert isinstance(reason, dict)
    return reason


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_refused_over_socketio(live: LiveServer, name: str) -> None:
    reason = await refused(live, {"token": BAD_TOKENS[name]})
    expected = "token_expired" if name == "expired" else "invalid_token"
    assert reason["data"]["type"] == expected  # type: ignore[index]


@pytest.mark.parametrize("auth", [None, {}, {"token": ""}, "just-a-string"])
async def test_connect_without_token_is_refused(live: LiveServer, auth: object) -> None:
    reason = await refused(live, auth)
    assert reason["data"]["type"] == "missing_token"  # type: ignore[index]


async def test_a_valid_token_connects_and_creates_the_user(
    live: LiveServer, http: httpx.AsyncClient, uid
) -> None:
    user = uid("newcomer")
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(live.url, auth={"token": token(user, "creator")}, transports=["websocket"])
    try:
        response = await http.get(
            "/api/v1/wallet", headers={"Authorization": f"Bearer {token(user, 'creator')}"}
        )
        kinds = {(b["kind"], b["currency"]) for b in response.json()["balances"]}
        assert ("earnings", "NGN") in kinds and ("wallet", "NGN") in kinds
    finally:
        await client.disconnect()


async def test_a_token_seen_before_still_expires_on_time(http: httpx.AsyncClient, uid) -> None:
    """The hub remembers tokens it verified; one it remembers stops working at its `exp`."""
    user = uid("brief")
    short = token(user, "fan", ttl=2)
    headers = {"Authorization": f"Bearer {short}"}
    first = await http.get("/api/v1/wallet", headers=headers)
    assert first.status_code == 200, first.text
    assert (await http.get("/api/v1/wallet", headers=headers)).status_code == 200  # remembered
    await asyncio.sleep(2.2)
    late = await http.get("/api/v1/wallet", headers=headers)
    assert late.status_code == 401
    assert late.json()["error"]["type"] == "token_expired"


async def test_remembered_tokens_are_bounded() -> None:
    verifier = HS256Verifier(JWT_SECRET)
    tokens = [token(f"many-{i}", "fan") for i in range(VERIFIED_KEPT + 5)]
    principals = [await verifier.verify(t) for t in tokens]
    assert [p.user_id for p in principals] == [f"many-{i}" for i in range(VERIFIED_KEPT + 5)]
    assert len(verifier._verified) == VERIFIED_KEPT
    assert tokens[0] not in verifier._verified  # the oldest went first
    assert (await verifier.verify(tokens[0])).user_id == "many-0"  # and is verified again
