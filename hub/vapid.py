"""VAPID keys (RFC 8292): the P-256 key pair that signs Web Push requests.

The private key is given as web-push tools print it (base64url of the raw 32-byte scalar, as
`vapid --gen --raw` or `npx web-push generate-vapid-keys` give) or as PEM. The public key is
the base64url uncompressed point: the `applicationServerKey` a browser subscribes with.
"""

from __future__ import annotations

import base64
import binascii
import functools
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url_decode(value: str) -> bytes:
    """Base64url with or without padding; ValueError if it is not."""
    text = value.strip()
    if not text or any(c not in _B64URL for c in text.rstrip("=")):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def load_private_key(value: str) -> ec.EllipticCurvePrivateKey:
    """The key from base64url (raw 32 bytes) or PEM text; ValueError saying what is wrong."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("is not a readable unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError("must be a P-256 (prime256v1) EC key")
        return key
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise ValueError("must be base64url (the raw 32-byte P-256 key) or PEM") from None
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes (a raw P-256 private key), not {len(raw)}")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        raise ValueError("is not a valid P-256 private key") from None


def public_key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@cache
@functools.cache  # GET /api/v1/push/config asks on every dashboard load
def public_key_of(private_key: str) -> str:
    """The applicationServerKey (base64url, 65 bytes) of a private key in either form."""
    return b64url_encode(public_key_bytes(load_private_key(private_key)))


def generate() -> tuple[str, str]:
    """A fresh key pair: (private key as base64url raw, public key as base64url)."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url_encode(raw), b64url_encode(public_key_bytes(key))
