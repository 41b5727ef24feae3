"""Logs: one JSON object per line with request id, user id, route, status and duration, and no
secret, token, signature or card number in any line, whatever the request carried."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid

from hub.logs import JsonFormatter
from providers.signatures import sign_paystack, sign_stripe
from tests.conftest import (
    JWT_SECRET,
    PAYSTACK_SECRET,
    SANDBOX_WEBHOOK_SECRET,
    STRIPE_SECRET,
    STRIPE_WEBHOOK_SECRET,
    token,
)
from tests.money import deliver, key, start_topup

CARD = "4111 1111 1111 1111"


async def test_log_lines_are_json_and_carry_no_secrets(http, sandbox, people) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    fan_token = token(people.fan, "fan")
    secrets = [
        fan_token,
        JWT_SECRET,
        PAYSTACK_SECRET,
        STRIPE_SECRET,
        STRIPE_WEBHOOK_SECRET,
        SANDBOX_WEBHOOK_SECRET,
        CARD,
        CARD.replace(" ", ""),
    ]
    try:
        tip = await http.post(
            "/api/v1/tips",
            json={
                "creator_id": people.creator,
                "amount": 100,
                "currency": "NGN",
                "message": f"card {CARD}",
            },
            headers={"Authorization": f"Bearer {fan_token}", **key()},
        )
        assert tip.status_code == 201
        await http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {fan_token}x"})
        await http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {CARD}"})
        payment = await start_topup(http, people.fan, 1_000, "paystack")
        result = await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")
        assert result["statuses"] == [200]
        body = json.dumps({"event": "charge.success", "data": {"reference": "x"}}).encode()
        signature = sign_paystack(body, PAYSTACK_SECRET)
        secrets.append(signature)
        await http.post(
            "/webhooks/paystack", content=body + b" ", headers={"x-paystack-signature": signature}
        )
        stripe_header = sign_stripe(body, STRIPE_WEBHOOK_SECRET, int(time.time()))
        secrets.append(stripe_header.split("v1=")[1])
        await http.post(
            "/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": stripe_header}
        )
        created = await http.post(
            "/api/v1/overlay-keys",
            json={},
            headers={"Authorization": f"Bearer {token(people.creator, 'creator')}"},
        )
        secrets.append(created.json()["key"])
        await http.post(
            "/api/v1/tips",
            content=b"{oops",
            headers={"Authorization": f"Bearer {fan_token}", "Idempotency-Key": uuid.uuid4().hex},
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    lines = [line for line in stream.getvalue().splitlines() if line]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for secret in secrets:
        leaked = [line for line in lines if secret in line]
        assert not leaked, f"a secret reached the logs: {leaked[:1]}"
    access = [r for r in records if r["logger"] == "hub.access"]
    tip_line = next(r for r in access if r.get("route") == "/api/v1/tips" and r["status"] == 201)
    assert tip_line["user_id"] == people.fan
    assert tip_line["request_id"] == tip.headers["x-request-id"]
    assert tip_line["method"] == "POST" and tip_line["duration_ms"] >= 0
    assert any(r.get("route") == "/webhooks/{provider}" and r["status"] == 401 for r in access)
