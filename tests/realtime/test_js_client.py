"""The official Socket.IO JavaScript client (socket.io-client from npm, under Node) against the
hub: connect with a token, receive a tip, drop, miss tips, reconnect with the last id, recover
each missed tip exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from ledger.accounts import Role
from ledger.money import Money
from tests.conftest import auth, create_user, token

CLIENT = Path(__file__).resolve().parent.parent / "js" / "client.mjs"
MODULES = CLIENT.parent / "node_modules" / "socket.io-client"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not MODULES.exists(),
    reason="needs Node.js and `npm ci --prefix tests/js` (make test does both where Node exists)",
)


class NodeClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def next(self, event: str, timeout: float = 10) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            assert self.process.stdout is not None
            while True:
                raw = await self.process.stdout.readline()
                assert raw, "the Node client exited"
                line = json.loads(raw)
                self.lines.append(line)
                if line["event"] == event:
                    return line

        return await asyncio.wait_for(read(), timeout)

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()


async def tip(http, fan: str, creator: str, amount: int) -> None:
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": amount, "currency": "NGN"},
        headers={**auth(fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text


async def test_the_official_client_recovers_missed_tips_once(live, http, sessions, uid) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(100_000, "NGN"))
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(CLIENT),
        env={**os.environ, "HUB_URL": live.url, "HUB_TOKEN": token(creator, "creator")},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    client = NodeClient(process)
    try:
        await client.next("connect")
        assert (await client.next("recovered"))["data"]["recovered"] is True
        await tip(http, fan, creator, 100)
        first = await client.next("tip.received")
        assert first["data"]["data"]["amount"] == 100
        await client.next("balance.updated")  # the tip's last event: the client is up to date

        await client.send("drop")
        await client.next("disconnect")
        for amount in (200, 300, 400):
            await tip(http, fan, creator, amount)

        await client.send("reconnect")
        await client.next("connect")
        recovered = await client.next("recovered")
        assert recovered["data"]["recovered"] is True
        assert recovered["data"]["missed"] == 6  # each tip: tip.received and balance.updated
        tips = [line for line in client.lines if line["event"] == "tip.received"]
        assert [line["data"]["data"]["amount"] for line in tips] == [100, 200, 300, 400]
        assert not any(line.get("duplicate") for line in client.lines)

        await tip(http, fan, creator, 500)  # and live again afterwards
        assert (await client.next("tip.received"))["data"]["data"]["amount"] == 500
        await client.send("quit")
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
