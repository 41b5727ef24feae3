"""An app's own provider account: its users' card payments, its creators' payouts go through
its Paystack account (a second sandbox on 127.0.0.1, with keys of its own, sending its webhooks
to the app's own URL), never the deployment's; a webhook can only touch what was made through
the account whose secret signed it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from hub.auth import Verifiers
from hub.runtime import build_provider_clients
from ledger.accounts import Role
from ledger.app_providers import (
    all_app_providers,
    list_app_providers,
    remove_app_provider,
    secrets_cipher,
)
from ledger.app_providers import set_app_provider as store
from ledger.apps import create_app, set_tokens
from ledger.db import unit_of_work
from ledger.errors import LedgerError
from ledger.ids import stored_id
from providers.registry import Providers
from sandbox import SandboxConfig
from sandbox.app import create_sandbox_app
from tests.conftest import (
    PAYSTACK_SECRET,
    SECRETS_KEY,
    STRIPE_SECRET,
    STRIPE_WEBHOOK_SECRET,
    LiveServer,
    auth,
    create_user,
    free_port,
    make_settings,
    run_jobs,
)
from tests.hub.test_app_settings import SECRET, app_token, bearer, platform
from tests.money import deliver, key

ACME_PAYSTACK = "sk_test_acme_" + "a" * 24


@pytest.fixture
async def acme_sandbox(live: LiveServer) -> AsyncIterator[tuple[str, Any]]:
    """An app, and a Paystack of its own: a sandbox with the app's key that sends its webhooks
    to /apps/<app>/webhooks/paystack on the hub under test."""
    app_id = f"acme-{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = LiveServer(
        create_sandbox_app(
            SandboxConfig(
                paystack_secret_key=ACME_PAYSTACK,
                stripe_secret_key=STRIPE_SECRET + "x",
                stripe_webhook_secret=STRIPE_WEBHOOK_SECRET + "x",
                sandbox_webhook_secret="whsec_" + "QUNNRS1zYW5kYm94LXNpZ25pbmcta2V5LTAxMjM0NQ==",
                hub_url=f"{live.url}/apps/{app_id}",
                public_url=f"http://127.0.0.1:{port}",
            )
        ),
        port,
    )
    await server.start()
    try:
        yield app_id, server
    finally:
        await server.stop()


def signed_paystack(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return body, {"x-paystack-signature": signature, "content-type": "application/json"}


async def test_an_apps_own_paystack_takes_its_payments_and_payouts(
    http, sandbox, sessions, services, stack, uid, acme_sandbox
) -> None:
    app_id, acme = acme_sandbox
    issuer = f"https://{app_id}.example.com/"
    async with unit_of_work(sessions) as uow:
        await create_app(uow.session, app_id, "Acme")
        await set_tokens(uow.session, app_id, issuer, secret=SECRET)
    async with unit_of_work(sessions) as uow:
        await store(
            uow.session,
            secrets_cipher(SECRETS_KEY),
            app_id,
            "paystack",
            {"secret_key": ACME_PAYSTACK},
            base_url=f"{acme.url}/paystack",
        )
    # a node reads a new app's issuer, and an account it has not seen, at most this often
    await asyncio.sleep(max(Verifiers.UNKNOWN_ISSUER_REFRESH, Providers.UNKNOWN_REFRESH))
    fan, creator = uid("fan"), uid("creator")
    as_fan = bearer(app_token(issuer, fan, "fan"), idempotency=True)

    # the app's fan tops up by card: through the app's Paystack, its webhook at the app's URL
    started = await http.post(
        "/api/v1/payments",
        json={"amount": 9_000, "currency": "NGN", "provider": "paystack"},
        headers=as_fan,
    )
    assert started.status_code == 201, started.text
    payment = started.json()
    assert payment["provider"] == "paystack"  # as the platform asked for it
    assert payment["checkout_url"].startswith(acme.url)
    async with httpx.AsyncClient(base_url=acme.url) as acme_control:
        # the same success, signed by the deployment's Paystack key and sent to its URL: it
        # names a payment of another account, and moves nothing
        forged_body, forged_headers = signed_paystack(
            PAYSTACK_SECRET,
            {
                "event": "charge.success",
                "data": {
                    "id": 700_000_000 + uuid.uuid4().int % 100_000_000,  # an event of its own
                    "reference": payment["reference"],
                    "amount": 9_000,
                    "currency": "NGN",
                    "status": "success",
                },
            },
        )
        forged = await http.post("/webhooks/paystack", content=forged_body, headers=forged_headers)
        assert forged.status_code == 200 and forged.json()["outcome"] != "applied", forged.text
        # and the app's URL takes only what the app's key signed
        wrong = await http.post(
            f"/apps/{app_id}/webhooks/paystack", content=forged_body, headers=forged_headers
        )
        assert wrong.status_code == 401
        done = await deliver(acme_control, f"checkout/{payment['reference']}")
        assert done["statuses"] == [200]
        wallet = await http.get("/api/v1/wallet", headers=bearer(app_token(issuer, fan, "fan")))
        assert {b["currency"]: b["balance"] for b in wallet.json()["balances"]}["NGN"] == 9_000

        # its creator is tipped from that wallet, and is paid out through the app's Paystack
        tip = await http.post(
            "/api/v1/tips",
            json={"creator_id": creator, "amount": 9_000, "currency": "NGN"},
            headers=bearer(app_token(issuer, fan, "fan"), idempotency=True),
        )
        assert tip.status_code == 404  # no such creator yet: its first request makes it
        as_creator = bearer(app_token(issuer, creator, "creator"))
        assert (await http.get("/api/v1/me", headers=as_creator)).status_code == 200
        tip = await http.post(
            "/api/v1/tips",
            json={"creator_id": creator, "amount": 9_000, "currency": "NGN"},
            headers=bearer(app_token(issuer, fan, "fan"), idempotency=True),
        )
        assert tip.status_code == 201, tip.text
        payout = await http.post(
            "/api/v1/payouts",
            json={"amount": 5_000, "currency": "NGN", "provider": "paystack"},
            headers={**as_creator, **key()},
        )
        assert payout.status_code in (201, 202), payout.text
        reference = payout.json()["reference"]
        await run_jobs(services, stack)  # a worker that reads the apps' accounts too
        paid = await deliver(acme_control, f"transfers/{reference}")
        assert paid["statuses"] == [200]
    shown = await http.get(
        f"/api/v1/payouts/{payout.json()['id']}",
        headers=bearer(app_token(issuer, creator, "creator")),
    )
    assert shown.json()["status"] == "paid" and shown.json()["provider"] == "paystack"
    # the deployment's sandbox never heard of either
    assert (
        await sandbox.post(f"/_sandbox/transfers/{reference}/deliver", json={})
    ).status_code == 404
    # a default-app fan still pays through the deployment's Paystack
    default_fan = uid("fan")
    await create_user(sessions, default_fan, Role.FAN)
    theirs = await http.post(
        "/api/v1/payments",
        json={"amount": 100, "currency": "NGN", "provider": "paystack"},
        headers={**auth(default_fan, "fan"), **key()},
    )
    assert theirs.status_code == 201 and not theirs.json()["checkout_url"].startswith(acme.url)


async def test_an_apps_provider_secrets_are_stored_sealed(sessions, services) -> None:
    _, issuer, _ = await platform(sessions)
    app_id = issuer.split("//")[1].split(".")[0]
    cipher = secrets_cipher(SECRETS_KEY)
    async with unit_of_work(sessions) as uow:
        await store(
            uow.session, cipher, app_id, "stripe", {"secret_key": "sk_x", "webhook_secret": "wh_y"}
        )
        with pytest.raises(LedgerError):  # stripe needs both
            await store(uow.session, cipher, app_id, "stripe", {"secret_key": "sk_x"})
        with pytest.raises(LedgerError):  # the default app's are the deployment's settings
            await store(uow.session, cipher, "default", "paystack", {"secret_key": "sk"})
        raw = (
            await uow.session.execute(
                text("SELECT secrets FROM app_providers WHERE app_id = :a"), {"a": app_id}
            )
        ).scalar_one()
    assert "sk_x" not in raw and "wh_y" not in raw
    async with sessions() as session:
        listed = await list_app_providers(session, app_id)
        assert [a.as_json()["provider"] for a in listed] == ["stripe"]
        assert "secrets" not in listed[0].as_json()
        read = [a for a in await all_app_providers(session, cipher) if a.app_id == app_id]
        assert read[0].secrets == {"secret_key": "sk_x", "webhook_secret": "wh_y"}
        # another key reads nothing of it, and says so
        other = Fernet(Fernet.generate_key())
        assert [a for a in await all_app_providers(session, other) if a.app_id == app_id] == []
    providers, client = build_provider_clients(make_settings(services))
    try:
        providers.read_apps_from(sessions)
        assert await providers.of_app(app_id, "stripe") == stored_id(app_id, "stripe")
        assert await providers.of_app(app_id, "paystack") is None  # no deployment's either
        async with unit_of_work(sessions) as uow:
            assert await remove_app_provider(uow.session, app_id, "stripe")
    finally:
        await client.aclose()
