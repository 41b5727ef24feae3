"""`hub dev`: embedded services, migrations, demo data, server, worker and a live tip watcher.

Every child is ours: on Ctrl-C (SIGINT) or SIGTERM all of them are stopped, and so are the
embedded services this run started. Children also die with us if we are killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from hub.auth import issue_token
from hub.cli import CommandError, _check_port
from hub.runtime import Runtime, resolve
from hub.seed import CREATOR, FANS, seed
from hub.settings import Settings
from ledger.migrate import upgrade

TOKEN_TTL = 7 * 24 * 3600
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", *args], env=env, preexec_fn=_die_with_parent
    )


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if child.poll() is not None:
                raise CommandError(f"a child process exited early ({child.args!r})")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/readyz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise CommandError(f"the server did not become ready at {url}/readyz in {timeout:.0f} s")


def _banner(runtime: Runtime, url: str) -> str:
    settings = runtime.settings
    secret = runtime.jwt_secret
    creator = issue_token(secret, CREATOR.user_id, CREATOR.role, TOKEN_TTL)
    fans = [issue_token(secret, fan.user_id, fan.role, TOKEN_TTL) for fan in FANS]
    currency = "NGN" if "NGN" in settings.currencies else settings.currencies[0]
    lines = [
        "",
        f"Hub is running at {url}  (Socket.IO on the same port, path /socket.io/)",
        f"  PostgreSQL {runtime.database_url.replace('+asyncpg', '')}",
        f"  Redis      {runtime.redis_url}",
        "",
        "Demo users (tokens valid 7 days):",
        f"  creator  {CREATOR.user_id:<14} {creator}",
        *(f"  fan      {fan.user_id:<14} {token}" for fan, token in zip(FANS, fans, strict=True)),
        "",
        f"The creator's socket is connected below ([{CREATOR.user_id}] lines). Tip it:",
        "",
        f"  curl -sS -X POST {url}/api/v1/tips \\",
        f"    -H 'Authorization: Bearer {fans[0]}' \\",
        '    -H "Idempotency-Key: $(date +%s%N)" -H "Content-Type: application/json" \\',
        f'    -d \'{{"creator_id": "{CREATOR.user_id}", "amount": 50000, '
        f'"currency": "{currency}", "message": "Great stream!"}}\'',
        "",
        f"  curl -sS {url}/api/v1/wallet -H 'Authorization: Bearer {fans[0]}'",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run_dev(settings: Settings) -> int:
    _check_port(settings)
    runtime = resolve(settings)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        upgrade(runtime.database_url)
        asyncio.run(seed(runtime))
        env = {
            **os.environ,
            "HUB_DATABASE_URL": runtime.database_url,
            "HUB_REDIS_URL": runtime.redis_url,
            "HUB_JWT_SECRET": runtime.jwt_secret,
        }
        url = f"http://{settings.host}:{settings.port}"
        children.append(_spawn(["serve"], env))
        children.append(_spawn(["worker"], env))
        _wait_ready(url, children, timeout=60)
        print(_banner(runtime, url), flush=True)
        creator_token = issue_token(runtime.jwt_secret, CREATOR.user_id, CREATOR.role, TOKEN_TTL)
        children.append(
            _spawn(
                ["watch", "--url", url, "--token", creator_token, "--label", CREATOR.user_id], env
            )
        )
        while not stopping:
            if any(child.poll() is not None for child in children):
                print("hub dev: a child process exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(children)
        if runtime.embedded is not None:
            runtime.embedded.stop()
        print("hub dev: stopped", file=sys.stderr, flush=True)
