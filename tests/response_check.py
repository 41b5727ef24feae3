"""Every JSON success answer of the hubs the suite runs is checked against the model its endpoint
declares for the OpenAPI document (`@operation(returns=...)`, hub/openapi.py): a field the
server sends that the model lacks, a field the model requires that the server leaves out, or a
value of another type fails the test whose request got that answer (tests/conftest.py). So the
document's response schemas are what the server answers, as far as the suite's ~600 tests
reach, and cannot drift from it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from hub.openapi import operation_of

VIOLATIONS: list[str] = []


class ResponseCheck:
    """ASGI middleware around a hub app (outermost, so it sees the route the router chose:
    Starlette writes it into the request's scope). `app` keeps the hub's own discovery of its
    parts (hub_of_app, the socket endpoint) working through it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        is_json = False
        chunks: list[bytes] = []

        async def checking_send(message: dict[str, Any]) -> None:
            nonlocal status, is_json
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers") or [])
                is_json = headers.get(b"content-type", b"").startswith(b"application/json")
            elif message["type"] == "http.response.body" and is_json and 200 <= status < 300:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    _check(scope, status, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, checking_send)


def _check(scope: dict[str, Any], status: int, body: bytes) -> None:
    endpoint = scope.get("endpoint")
    described = operation_of(endpoint) if endpoint is not None else None
    if described is None:
        return
    where = f"{scope['method']} {scope['path']} → {status}"
    if str(status) not in described.responses:
        VIOLATIONS.append(f"{where}: a success status its operation does not list")
        return
    model = described.returns.get(str(status))
    if model is None or not body:
        return
    try:
        model.model_validate_json(body)
    except ValidationError as exc:
        VIOLATIONS.append(f"{where} ({model.__name__}): {exc}\n  body: {body[:600]!r}")
