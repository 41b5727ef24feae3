"""Receipts by email: a real SMTP server (aiosmtpd) on 127.0.0.1, a real worker, one email."""

from __future__ import annotations

import asyncio
import email
import uuid
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hub.auth import issue_token
from hub.embedded import free_port
from jobs import receipts
from jobs.mail import SmtpConfig
from ledger.accounts import Role
from ledger.money import Money
from tests.conftest import JWT_SECRET, Services, create_user, run_burst_worker


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, SmtpConfig]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpConfig(host="127.0.0.1", port=port, sender="Hub <receipts@hub.test>")
    finally:
        controller.stop()


async def test_a_tip_receipt_is_emailed_once(http, sessions, services: Services, smtp, uid):
    inbox, config = smtp
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(20_000, "NGN"))
    address = f"{fan}@example.test"
    fan_token = issue_token(JWT_SECRET, fan, Role.FAN, 600, email=address)
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 12_345, "currency": "NGN"},
        headers={"Authorization": f"Bearer {fan_token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201
    transfer_id = response.json()["id"]

    await run_burst_worker(services, smtp=config)
    # Again, directly: at least once means it may run twice; the email goes once.
    await receipts.issue({"sessions": sessions, "smtp": config}, transfer_id)
    await asyncio.sleep(0.1)

    mine = [m for m in inbox.messages if m["To"] == address]
    assert len(mine) == 1
    body = mine[0].get_payload()
    assert "NGN 123.45" in body and mine[0]["Subject"].startswith("Your receipt R-")
