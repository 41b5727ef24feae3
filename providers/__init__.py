"""Payment provider adapters. This module holds what they share: reading a webhook's JSON and
calling a provider's API so that every failure is a ProviderError whose message has no secret."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from providers.base import MalformedPayload, ProviderError
from providers.jsontext import JsonLimits, JsonRefused, loads

T = TypeVar("T")

# Per request, so that a client built without a timeout still cannot hang a request or a job.
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


# A provider's events are parsed only once their signature holds: limits for its own payloads
# (an invoice with hundreds of lines), not for a stranger's.
WEBHOOK_JSON = JsonLimits(max_depth=64, max_values=200_000)


def load_object(body: bytes) -> dict[str, Any]:
    """A signed webhook's JSON object, within WEBHOOK_JSON. A NUL (escaped or not) is refused
    too: PostgreSQL stores none, and no provider sends one."""
    if b"\x00" in body or b"\\u0000" in body:
        raise MalformedPayload("body contains a NUL character")
    try:
        value = loads(body, WEBHOOK_JSON)
    except JsonRefused as exc:
        raise MalformedPayload(f"body is not JSON within limits: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedPayload("body is not a JSON object")
    return value


def mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: object) -> str | None:
    """A non-empty string or integer id as a string; anything else is absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def minor_units(value: object) -> int | None:
    """An amount in minor units; Paystack sends some as digit strings ("5000"). No floats."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def currency(value: object) -> str | None:
    code = text(value)
    return code.upper() if code is not None and len(code) == 3 and code.isalpha() else None


def need(value: T | None, what: str) -> T:
    if value is None:
        raise MalformedPayload(f"{what} is missing or invalid")
    return value


def body_digest(body: bytes) -> str:
    """A stable id for an event that carries none: a redelivery has the same bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def _reason(response: httpx.Response, secret: str) -> str:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    found = mapping(payload).get("message") or mapping(mapping(payload).get("error")).get("message")
    reason = found if isinstance(found, str) else response.reason_phrase
    if secret:
        reason = reason.replace(secret, "[secret]")
    return reason[:200]


async def call(
    http: httpx.AsyncClient,
    provider: str,
    secret: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Mapping[str, Any] | None = None,
    form: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON object a provider answered with; ProviderError on a network error, a non-2xx
    answer or a body that is not a JSON object."""
    path = urlsplit(url).path
    try:
        response = await http.request(
            method, url, headers=headers, json=json_body, data=form, timeout=TIMEOUT
        )
    except httpx.HTTPError as exc:
        raise ProviderError(f"{provider}: {method} {path} failed: {type(exc).__name__}") from exc
    if not response.is_success:
        raise ProviderError(
            f"{provider}: {method} {path} answered {response.status_code}: "
            f"{_reason(response, secret)}"
        )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise ProviderError(f"{provider}: {method} {path} answered with no JSON object")
    return payload
