"""The read routes behind the web pages: the caller, their tips, a creator and their content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hub.api import ROUTES
from hub.auth import issue_token
from hub.openapi import operation_of
from ledger.accounts import Role
from ledger.money import Money
from tests.conftest import JWT_SECRET, People, auth, create_user
from tests.money import key


def named(sub: str, role: str, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, Role(role), 600, name=name)}"}


async def tip(
    http: httpx.AsyncClient, headers: dict[str, str], creator: str, amount: int, message: str
) -> int:
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": amount, "currency": "NGN", "message": message},
        headers={**headers, **key()},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def all_pages(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Every item over every page (following next_cursor), and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = f"limit={limit}" + (f"&before={cursor}" if cursor is not None else "")
        separator = "&" if "?" in path else "?"
        response = await http.get(f"{path}{separator}{query}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["data"]) <= limit
        assert body["has_more"] is (body["next_cursor"] is not None)
        items += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 50, "the cursor never ends"


async def new_content(
    http: httpx.AsyncClient, creator: str, title: str, body: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"title": title, "price": 1_000, "currency": "NGN"}
    if body is not None:
        payload["body"] = body
    response = await http.post("/api/v1/content", json=payload, headers=auth(creator, "creator"))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_me_answers_the_callers_id_role_and_name(http, uid) -> None:
    fan, creator = uid("fan"), uid("creator")

    named_fan = await http.get("/api/v1/me", headers=named(fan, "fan", "Ada"))
    anonymous = await http.get("/api/v1/me", headers=auth(creator, "creator"))

    assert named_fan.status_code == 200, named_fan.text
    assert named_fan.json() == {"id": fan, "role": "fan", "name": "Ada"}
    assert anonymous.json() == {"id": creator, "role": "creator", "name": None}
    assert (await http.get("/api/v1/me")).status_code == 401


async def test_tips_page_newest_first_each_once_and_only_the_callers(
    http, people: People, sessions, uid
) -> None:
    other_fan, other_creator = uid("fan"), uid("creator")
    await create_user(sessions, other_fan, Role.FAN, fund=Money(100_000, "NGN"))
    await create_user(sessions, other_creator, Role.CREATOR)
    fan_headers = named(people.fan, "fan", "Ada")
    other_headers = auth(other_fan, "fan")
    await http.get("/api/v1/me", headers=named(people.creator, "creator", "Cleo"))
    mine = [await tip(http, fan_headers, people.creator, 1_000 + i, f"m{i}") for i in range(7)]
    theirs = [await tip(http, other_headers, people.creator, 500, "other") for _ in range(2)]
    elsewhere = await tip(http, other_headers, other_creator, 700, "elsewhere")

    received, pages = await all_pages(http, "/api/v1/tips", auth(people.creator, "creator"), 4)
    assert pages == 3
    ids = [item["id"] for item in received]
    assert ids == sorted(mine + theirs, reverse=True)  # newest first, none twice, none missing
    sent, pages = await all_pages(http, "/api/v1/tips", auth(people.fan, "fan"), 2)
    assert pages == 4
    assert [item["id"] for item in sent] == sorted(mine, reverse=True)  # not the other fan's
    other_sent, _ = await all_pages(http, "/api/v1/tips?direction=sent", other_headers, 100)
    assert [item["id"] for item in other_sent] == sorted([*theirs, elsewhere], reverse=True)
    other_received, _ = await all_pages(http, "/api/v1/tips", auth(other_creator, "creator"), 20)
    assert [item["id"] for item in other_received] == [elsewhere]
    fan_received, _ = await all_pages(
        http, "/api/v1/tips?direction=received", auth(people.fan, "fan"), 20
    )
    assert fan_received == []

    newest = sent[0]
    fee = 1_006 // 10  # the test hub's fee is 1000 bps
    assert newest == {
        "id": mine[-1],
        "fan_id": people.fan,
        "fan_name": "Ada",
        "creator_id": people.creator,
        "creator_name": "Cleo",
        "amount": {"amount": 1_006, "currency": "NGN"},
        "fee": {"amount": fee, "currency": "NGN"},
        "net": {"amount": 1_006 - fee, "currency": "NGN"},
        "message": "m6",
        "payment_id": None,
        "created_at": newest["created_at"],
    }
    assert received[0]["fan_name"] is None  # the other fan's token had no name


async def test_a_creator_and_their_content_body_only_with_access(
    http, people: People, sessions, uid
) -> None:
    other_creator = uid("creator")
    await create_user(sessions, other_creator, Role.CREATOR)
    await http.get("/api/v1/me", headers=named(people.creator, "creator", "Cleo"))
    secret = await new_content(http, people.creator, "Secret", body="https://example.com/v/1")
    plain = [await new_content(http, people.creator, f"Item {i}") for i in range(4)]
    await new_content(http, other_creator, "Not theirs", body="other")
    assert secret["body"] == "https://example.com/v/1"  # the creator's own answer
    fan = auth(people.fan, "fan")
    path = f"/api/v1/creators/{people.creator}/content"

    profile = await http.get(f"/api/v1/creators/{people.creator}", headers=fan)
    assert profile.status_code == 200, profile.text
    assert profile.json() == {"id": people.creator, "name": "Cleo", "goal": None, "live": None}

    listed, pages = await all_pages(http, path, fan, 2)
    assert pages == 3
    expected = [item["id"] for item in [secret, *plain]]
    assert [item["id"] for item in listed] == sorted(expected, reverse=True)
    assert all(item["has_access"] is False and "body" not in item for item in listed)
    assert listed[-1] == {**{k: v for k, v in secret.items() if k != "body"}, "has_access": False}
    before = await http.get(f"/api/v1/content/{secret['id']}", headers=fan)
    assert before.json()["has_access"] is False
    assert "body" not in before.json()

    bought = await http.post(f"/api/v1/content/{secret['id']}/purchase", headers={**fan, **key()})
    assert bought.status_code == 201, bought.text

    after = await http.get(f"/api/v1/content/{secret['id']}", headers=fan)
    assert after.json()["has_access"] is True
    assert after.json()["body"] == "https://example.com/v/1"
    listed, _ = await all_pages(http, path, fan, 2)
    by_id = {item["id"]: item for item in listed}
    assert by_id[secret["id"]]["has_access"] is True
    assert by_id[secret["id"]]["body"] == "https://example.com/v/1"
    assert all("body" not in by_id[item["id"]] for item in plain)
    stranger, _ = await all_pages(http, path, auth(uid("fan"), "fan"), 100)  # bought nothing
    assert all(item["has_access"] is False and "body" not in item for item in stranger)
    own, _ = await all_pages(http, path, auth(people.creator, "creator"), 100)
    assert all(item["has_access"] is True and "body" in item for item in own)
    assert {item["id"]: item["body"] for item in own}[plain[0]["id"]] is None


async def test_unknown_creators_and_non_creators_are_404(http, people: People, uid) -> None:
    fan = auth(people.fan, "fan")
    for creator_id in (uid("nobody"), people.fan):
        for path in (f"/api/v1/creators/{creator_id}", f"/api/v1/creators/{creator_id}/content"):
            response = await http.get(path, headers=fan)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["type"] == "creator_not_found"
            assert response.json()["error"]["param"] == "creator_id"


async def test_bad_page_queries_are_422(http, people: People) -> None:
    fan = auth(people.fan, "fan")
    for path in ("/api/v1/tips", f"/api/v1/creators/{people.creator}/content"):
        for query, param in (
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
            ("before=x", "before"),
        ):
            response = await http.get(f"{path}?{query}", headers=fan)
            assert response.status_code == 422, (path, query, response.text)
            assert response.json()["error"]["type"] == "invalid_request"
            assert response.json()["error"]["param"] == param
        assert (await http.get(f"{path}?limit=100", headers=fan)).status_code == 200
    response = await http.get("/api/v1/tips?direction=both", headers=fan)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "type": "invalid_request",
        "message": "direction: must be received or sent",
        "param": "direction",
    }


async def test_a_content_body_is_at_most_20000_characters(http, people: People) -> None:
    creator = auth(people.creator, "creator")
    longest = {"title": "Long", "price": 100, "currency": "NGN", "body": "x" * 20_000}

    accepted = await http.post("/api/v1/content", json=longest, headers=creator)
    refused = await http.post(
        "/api/v1/content", json={**longest, "body": "x" * 20_001}, headers=creator
    )
    not_text = await http.post("/api/v1/content", json={**longest, "body": 5}, headers=creator)

    assert accepted.status_code == 201, accepted.text
    assert len(accepted.json()["body"]) == 20_000
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "body"
    assert not_text.status_code == 422


async def test_every_api_route_is_in_the_openapi_document(http) -> None:
    document = (await http.get("/openapi.json")).json()
    for route in ROUTES:
        if not route.path.startswith("/api/v1/"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in document["paths"].get(route.path, {}), (
                    method,
                    route.path,
                )
    content_body = document["paths"]["/api/v1/content"]["post"]["requestBody"]
    # Generated from the route table and each endpoint's @operation: no path is written in
    # hub/openapi.py, and every route is documented but the checkout's return page and the
    # document itself.
    assert "/api/v1" not in (Path(__file__).parents[2] / "hub" / "openapi.py").read_text()
    undocumented = {
        (route.path, method)
        for route in ROUTES
        for method in route.methods or ()
        if method != "HEAD" and operation_of(route.endpoint) is None
    }
    assert undocumented == {("/checkout/return", "GET"), ("/openapi.json", "GET")}
    assert "body" in content_body["content"]["application/json"]["schema"]["properties"]
    # an endpoint with two success answers has a schema for each
    for path in ("/api/v1/tips", "/api/v1/content/{content_id}/purchase"):
        answers = document["paths"][path]["post"]["responses"]
        schemas = {
            code: answers[code]["content"]["application/json"]["schema"] for code in ["201", "202"]
        }
        assert schemas["202"] == {"$ref": "#/components/schemas/CardCheckout"}, path
        assert schemas["201"] != schemas["202"]
    assert "checkout_url" in document["components"]["schemas"]["CardCheckout"]["properties"]


async def test_who_may_call_each_route_is_said_once_in_the_route_table(http) -> None:
    """Every /api/v1 route but the open one declares its caller in the route table (hub.guard),
    and the OpenAPI document's security is that declaration (tests/test_layout.py: no route
    authenticates by itself)."""
    from hub.guard import access_of

    document = (await http.get("/openapi.json")).json()
    open_routes = {"/api/v1/push/config"}
    for route in ROUTES:
        if not route.path.startswith("/api/v1/") or route.path in open_routes:
            continue
        access = access_of(route.endpoint)
        assert access is not None and not access.public, route.path
        for method in route.methods or ():
            if method == "HEAD":
                continue
            operation = document["paths"][route.path][method.lower()]
            expected = ([{"bearer": []}] if access.users else []) + (
                [{"apiKey": []}] if access.scope is not None else []
            )
            assert operation["security"] == expected, (method, route.path)
            assert "401" in operation["responses"]
    assert document["paths"]["/api/v1/notifications"]["post"]["security"] == [{"apiKey": []}]
    assert document["paths"]["/api/v1/presence"]["get"]["security"] == [
        {"bearer": []},
        {"apiKey": []},
    ]
