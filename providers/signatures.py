"""Webhook signatures of Paystack, Stripe and Standard Webhooks: verify (raw bytes, constant time,
before any JSON parsing) and sign (for the sandbox and the tests)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from providers.base import BadSignature

TOLERANCE = 300  # seconds either side of now; Stripe's and Standard Webhooks' default


def _header(headers: Mapping[str, str], name: str) -> str:
    # Starlette's Headers are case-insensitive, a plain dict (tests, other callers) is not.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise BadSignature(f"missing {name} header")
    return value


def _ascii(value: str) -> bytes | None:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        return None


def _fresh(timestamp: str, now: float, tolerance: int) -> None:
    try:
        seconds = int(timestamp)
    except ValueError:
        raise BadSignature("timestamp is not an integer") from None
    if abs(now - seconds) > tolerance:
        raise BadSignature("timestamp outside the tolerance")


def sign_paystack(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def verify_paystack(headers: Mapping[str, str], body: bytes, key: str) -> None:
    # Paystack documents lowercase hex (Node's digest("hex")); an uppercase header is not what
    # Paystack sends, so it is refused rather than normalised: one spelling, one comparison.
    given = _ascii(_header(headers, "x-paystack-signature"))
    expected = sign_paystack(body, key).encode()
    if given is None or not hmac.compare_digest(given, expected):
        raise BadSignature("x-paystack-signature does not match")


def _stripe_digest(body: bytes, secret: str, timestamp: str) -> str:
    # Stripe keys the HMAC with the whole "whsec_..." string, not a decoded form of it.
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_stripe(body: bytes, secret: str, t: int) -> str:
    """The Stripe-Signature header value for `body` signed at unix time `t`."""
    return f"t={t},v1={_stripe_digest(body, secret, str(t))}"


def verify_stripe(
    headers: Mapping[str, str], body: bytes, secret: str, now: float, tolerance: int = TOLERANCE
) -> None:
    timestamp: str | None = None
    candidates: list[str] = []
    for item in _header(headers, "stripe-signature").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == "v1":  # several during a secret rotation; v0 and other schemes are ignored
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadSignature("Stripe-Signature lacks t= or v1=")
    _fresh(timestamp, now, tolerance)
    expected = _stripe_digest(body, secret, timestamp).encode()
    if not any(_matches(candidate, expected) for candidate in candidates):
        raise BadSignature("no v1 signature matches")


def _matches(candidate: str, expected: bytes) -> bool:
    given = _ascii(candidate)
    return given is not None and hmac.compare_digest(given, expected)


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after "whsec_", padding optional."""
    encoded = secret.removeprefix("whsec_")
    encoded += "=" * (-len(encoded) % 4)  # some senders strip the padding
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None


def _standard_digest(msg_id: str, timestamp: str, body: bytes, key: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())


def sign_standard(msg_id: str, ts: int, body: bytes, secret: str) -> str:
    """The webhook-signature header value ("v1,<base64>")."""
    return "v1," + _standard_digest(msg_id, str(ts), body, standard_key(secret)).decode()


def verify_standard(
    headers: Mapping[str, str], body: bytes, secret: str, now: float, tolerance: int = TOLERANCE
) -> None:
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    _fresh(timestamp, now, tolerance)
    expected = _standard_digest(msg_id, timestamp, body, standard_key(secret))
    candidates = [
        value
        for version, _, value in (s.partition(",") for s in signatures.split())
        if version == "v1"
    ]
    if not any(_matches(candidate, expected) for candidate in candidates):
        raise BadSignature("no v1 signature matches")


def paystack_headers(body: bytes, key: str) -> dict[str, str]:
    return {"content-type": "application/json", "x-paystack-signature": sign_paystack(body, key)}


def stripe_headers(body: bytes, secret: str, t: int) -> dict[str, str]:
    return {"content-type": "application/json", "stripe-signature": sign_stripe(body, secret, t)}


def standard_headers(msg_id: str, ts: int, body: bytes, secret: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(msg_id, ts, body, secret),
    }
