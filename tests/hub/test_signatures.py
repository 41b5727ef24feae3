"""Webhook signatures: what verifies, and the many near misses that must not."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import BadSignature
from providers.signatures import (
    paystack_headers,
    sign_paystack,
    sign_standard,
    sign_stripe,
    standard_headers,
    standard_key,
    stripe_headers,
    verify_paystack,
    verify_standard,
    verify_stripe,
)

PAYSTACK_KEY = "sk_test_" + "p" * 40
STRIPE_SECRET = "whsec_stripe-test-secret-0123456789"
# 31 bytes, so that the base64 has padding ("=") and the unpadded form differs.
STANDARD_SECRET = "whsec_" + base64.b64encode(bytes(range(31))).decode()
NOW = 1_750_000_000
BODY = json.dumps(
    {"event": "charge.success", "data": {"reference": "ref-1", "amount": 5000}},
    separators=(",", ":"),
).encode()


def _flip(body: bytes, index: int, mask: int = 0x01) -> bytes:
    changed = bytearray(body)
    changed[index % len(changed)] ^= mask
    return bytes(changed)


def _reserialized(body: bytes) -> bytes:
    # Same data, other bytes: what a framework's parsed-and-dumped body would look like.
    again = json.dumps(json.loads(body), indent=1).encode()
    assert again != body and json.loads(again) == json.loads(body)
    return again


# -- Paystack --


def test_paystack_valid() -> None:
    verify_paystack(paystack_headers(BODY, PAYSTACK_KEY), BODY, PAYSTACK_KEY)


def test_paystack_header_name_in_any_case() -> None:
    verify_paystack({"X-Paystack-Signature": sign_paystack(BODY, PAYSTACK_KEY)}, BODY, PAYSTACK_KEY)


@pytest.mark.parametrize(
    "body", [_flip(BODY, 10), _reserialized(BODY)], ids=["byte-flipped", "re-serialized"]
)
def test_paystack_other_bytes(body: bytes) -> None:
    with pytest.raises(BadSignature):
        verify_paystack(paystack_headers(BODY, PAYSTACK_KEY), body, PAYSTACK_KEY)


def test_paystack_uppercase_hex_is_refused() -> None:
    upper = sign_paystack(BODY, PAYSTACK_KEY).upper()
    with pytest.raises(BadSignature):
        verify_paystack({"x-paystack-signature": upper}, BODY, PAYSTACK_KEY)


def test_paystack_wrong_key_and_missing_header() -> None:
    with pytest.raises(BadSignature):
        verify_paystack(paystack_headers(BODY, "sk_test_other"), BODY, PAYSTACK_KEY)
    with pytest.raises(BadSignature):
        verify_paystack({}, BODY, PAYSTACK_KEY)
    with pytest.raises(BadSignature):
        verify_paystack({"x-paystack-signature": "é" * 128}, BODY, PAYSTACK_KEY)


@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_paystack_any_flipped_byte_fails(index: int, mask: int) -> None:
    headers = paystack_headers(BODY, PAYSTACK_KEY)
    with pytest.raises(BadSignature):
        verify_paystack(headers, _flip(BODY, index, mask), PAYSTACK_KEY)


# -- Stripe --


def test_stripe_valid() -> None:
    verify_stripe(stripe_headers(BODY, STRIPE_SECRET, NOW), BODY, STRIPE_SECRET, NOW)
    verify_stripe(
        {"Stripe-Signature": sign_stripe(BODY, STRIPE_SECRET, NOW)}, BODY, STRIPE_SECRET, NOW + 300
    )


@pytest.mark.parametrize(
    "body", [_flip(BODY, 3), _reserialized(BODY)], ids=["byte-flipped", "re-serialized"]
)
def test_stripe_other_bytes(body: bytes) -> None:
    with pytest.raises(BadSignature):
        verify_stripe(stripe_headers(BODY, STRIPE_SECRET, NOW), body, STRIPE_SECRET, NOW)


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301], ids=["too-old", "from-the-future"])
def test_stripe_timestamp_outside_tolerance(now: int) -> None:
    with pytest.raises(BadSignature):
        verify_stripe(stripe_headers(BODY, STRIPE_SECRET, NOW), BODY, STRIPE_SECRET, now)


def test_stripe_secret_rotation_second_v1_matches() -> None:
    old = sign_stripe(BODY, "whsec_the-old-secret", NOW).split(",")[1]
    new = sign_stripe(BODY, STRIPE_SECRET, NOW).split(",")[1]
    header = f"t={NOW},{old},{new},v0=ignored"
    verify_stripe({"stripe-signature": header}, BODY, STRIPE_SECRET, NOW)


def test_stripe_only_v1_counts() -> None:
    digest = sign_stripe(BODY, STRIPE_SECRET, NOW).split("v1=")[1]
    with pytest.raises(BadSignature):
        verify_stripe({"stripe-signature": f"t={NOW},v0={digest}"}, BODY, STRIPE_SECRET, NOW)


def test_stripe_key_is_the_whole_whsec_string() -> None:
    # Stripe keys the HMAC with the secret as written, prefix included; a decoded key is wrong.
    stripped = STRIPE_SECRET.removeprefix("whsec_")
    with pytest.raises(BadSignature):
        verify_stripe(stripe_headers(BODY, stripped, NOW), BODY, STRIPE_SECRET, NOW)


@pytest.mark.parametrize(
    "header",
    [None, "", f"t={NOW}", "v1=abc", f"t=soon,v1={'0' * 64}", f"t={NOW},v1=é"],
    ids=["missing", "empty", "no-v1", "no-t", "bad-t", "non-ascii"],
)
def test_stripe_bad_headers(header: str | None) -> None:
    headers = {} if header is None else {"stripe-signature": header}
    with pytest.raises(BadSignature):
        verify_stripe(headers, BODY, STRIPE_SECRET, NOW)


@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_stripe_any_flipped_byte_fails(index: int, mask: int) -> None:
    headers = stripe_headers(BODY, STRIPE_SECRET, NOW)
    with pytest.raises(BadSignature):
        verify_stripe(headers, _flip(BODY, index, mask), STRIPE_SECRET, NOW)


# -- Standard Webhooks --


def test_standard_valid() -> None:
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    verify_standard(headers, BODY, STANDARD_SECRET, NOW)


def test_standard_secret_without_padding() -> None:
    unpadded = STANDARD_SECRET.rstrip("=")
    assert unpadded != STANDARD_SECRET
    assert standard_key(unpadded) == standard_key(STANDARD_SECRET)
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    verify_standard(headers, BODY, unpadded, NOW)


def test_standard_known_vector() -> None:
    # The worked example of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign_standard("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, secret) == expected


@pytest.mark.parametrize(
    "body", [_flip(BODY, 0), _reserialized(BODY)], ids=["byte-flipped", "re-serialized"]
)
def test_standard_other_bytes(body: bytes) -> None:
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    with pytest.raises(BadSignature):
        verify_standard(headers, body, STANDARD_SECRET, NOW)


def test_standard_id_is_signed() -> None:
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET) | {"webhook-id": "msg_2"}
    with pytest.raises(BadSignature):
        verify_standard(headers, BODY, STANDARD_SECRET, NOW)


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301], ids=["too-old", "from-the-future"])
def test_standard_timestamp_outside_tolerance(now: int) -> None:
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    with pytest.raises(BadSignature):
        verify_standard(headers, BODY, STANDARD_SECRET, now)


def test_standard_any_v1_of_several_matches() -> None:
    good = sign_standard("msg_1", NOW, BODY, STANDARD_SECRET)
    other = sign_standard("msg_1", NOW, BODY, "whsec_" + base64.b64encode(b"x" * 24).decode())
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    headers["webhook-signature"] = f"v1a,ignored {other} {good}"
    verify_standard(headers, BODY, STANDARD_SECRET, NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header(missing: str) -> None:
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    del headers[missing]
    with pytest.raises(BadSignature):
        verify_standard(headers, BODY, STANDARD_SECRET, NOW)


def test_standard_malformed_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        standard_key("whsec_not base64!")


@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_standard_any_flipped_byte_fails(index: int, mask: int) -> None:
    headers = standard_headers("msg_1", NOW, BODY, STANDARD_SECRET)
    with pytest.raises(BadSignature):
        verify_standard(headers, _flip(BODY, index, mask), STANDARD_SECRET, NOW)
