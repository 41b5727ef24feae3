"""`hub dev` as a newcomer runs it: embedded services, demo data, a tip arriving live, and
Ctrl-C leaving no process behind. A second run reuses the data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil

from hub.auth import issue_token
from hub.embedded import free_port
from ledger.accounts import Role
from tests.conftest import SocketProbe


class Dev:
    """`hub dev` in a subprocess, its output collected line by line."""

    def __init__(self, home: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(HUB_HOME=str(home), HUB_PORT=str(port), HUB_LOG_LEVEL="warning")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "dev"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, f"no {text!r} in: {self.output}"
            await asyncio.sleep(0.1)

    def everything_started(self, home: Path) -> list[psutil.Process]:
        procs = psutil.Process(self.process.pid).children(recursive=True)
        for pid_file in (home / "postgres/data/postmaster.pid", home / "redis/redis.pid"):
            server = psutil.Process(int(pid_file.read_text().splitlines()[0]))
            procs += [server, *server.children(recursive=True)]
        return procs

    async def stop_and_check(self, home: Path) -> None:
        started = self.everything_started(home)
        assert len(started) >= 5  # serve, worker, watcher, postgres (and its workers), redis
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=60) == 0, self.output
        _, alive = psutil.wait_procs(started, timeout=10)
        assert not alive, f"left running: {alive}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


async def tip_once(url: str, home: Path) -> int:
    secret = (home / "jwt-secret").read_text().strip()
    creator = SocketProbe()
    await creator.connect(url, {"token": issue_token(secret, "demo-creator", Role.CREATOR, 60)})
    try:
        fan = {"Authorization": f"Bearer {issue_token(secret, 'demo-fan-1', Role.FAN, 60)}"}
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            response = await client.post(
                "/api/v1/tips",
                json={"creator_id": "demo-creator", "amount": 50_000, "currency": "NGN"},
                headers={**fan, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert response.status_code == 201, response.text
            [alert] = await creator.wait_for("tip.received", timeout=10)
            assert alert["data"]["amount"] == 50_000
            wallet = (await client.get("/api/v1/wallet", headers=fan)).json()
    finally:
        await creator.close()
    return int(next(b["balance"] for b in wallet["balances"] if b["currency"] == "NGN"))


async def demo_sign_in_works(url: str) -> None:
    """Under hub dev the sign-in page lists the demo users and signs one in with a click."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        users = (await client.get("/app/dev/users")).json()["data"]
        assert {u["id"] for u in users} == {
            "demo-creator",
            "demo-fan-1",
            "demo-fan-2",
            "demo-admin",
        }
        token = (await client.post("/app/dev/token", json={"user_id": "demo-fan-1"})).json()
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['token']}"})
        assert me.json() == {"id": "demo-fan-1", "role": "fan", "name": "Ada (demo fan)"}
        refused = await client.post("/app/dev/token", json={"user_id": "someone-else"})
        assert refused.status_code == 404


async def test_dev_runs_tips_live_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    home, port = tmp_path / "hub-home", free_port()
    url = f"http://127.0.0.1:{port}"

    first = Dev(home, port)
    try:
        await first.wait_for_line("[demo-creator] connected")
        assert "curl" in first.output and f"{url}/api/v1/tips" in first.output
        assert f"{url}/app/creator" in first.output and f"{url}/app/fan" in first.output
        await demo_sign_in_works(url)
        assert await tip_once(url, home) == 5_000_000 - 50_000
        await first.wait_for_line("[demo-creator] tip.received", timeout=10)  # the watcher too
        await first.stop_and_check(home)
    finally:
        first.kill()

    second = Dev(home, port)
    try:
        await second.wait_for_line("[demo-creator] connected")
        # Demo funding is not repeated: the first tip is still spent.
        assert await tip_once(url, home) == 5_000_000 - 2 * 50_000
        await second.stop_and_check(home)
    finally:
        second.kill()
