"""`hub dev`: embedded services, migrations, demo data, server, worker and a live tip watcher.

Every child is ours: on Ctrl-C (SIGINT) or SIGTERM all of them are stopped, and so are the
embedded services this run started. Children also die with us if we are killed outright.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from hub.auth import issue_token
from hub.cli import CommandError, _check_port
from hub.embedded import free_port, port_is_free
from hub.runtime import Runtime, resolve, resolve_secrets_key
from hub.seed import ADMIN, CREATOR, FANS, seed, seed_key
from hub.settings import Settings
from hub.vapid import generate as generate_vapid_keys
from ledger.migrate import upgrade

TOKEN_TTL = 12 * 3600  # within HUB_JWT_MAX_LIFETIME_SECONDS (a day by default)
_PR_SET_PDEATHSIG = 1


DEV_ORIGINS = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*"


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


def _sandbox_env(settings: Settings, sandbox_url: str) -> dict[str, str]:
    """Provider settings that point Paystack, Stripe and the "sandbox" sender at the local
    sandbox, with secrets kept under HUB_HOME. Providers the operator configured are kept."""
    path = settings.home / "sandbox-secrets.json"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(
            json.dumps(
                {
                    "paystack": "sk_test_" + secrets.token_hex(20),
                    "stripe": "sk_test_" + secrets.token_hex(20),
                    "stripe_webhook": "whsec_" + secrets.token_hex(24),
                    "sandbox_webhook": "whsec_" + base64.b64encode(os.urandom(24)).decode(),
                }
            )
        )
    keys = json.loads(path.read_text())
    env: dict[str, str] = {"HUB_SANDBOX_URL": sandbox_url}
    if settings.paystack_secret_key is None:
        env.update(
            HUB_PAYSTACK_SECRET_KEY=keys["paystack"],
            HUB_PAYSTACK_BASE_URL=f"{sandbox_url}/paystack",
        )
    if settings.stripe_secret_key is None:
        env.update(
            HUB_STRIPE_SECRET_KEY=keys["stripe"],
            HUB_STRIPE_WEBHOOK_SECRET=keys["stripe_webhook"],
            HUB_STRIPE_BASE_URL=f"{sandbox_url}/stripe",
        )
    if "sandbox" not in settings.standard_webhook_secrets:
        senders = {k: v.get_secret_value() for k, v in settings.standard_webhook_secrets.items()}
        senders["sandbox"] = keys["sandbox_webhook"]
        env["HUB_STANDARD_WEBHOOK_SECRETS"] = json.dumps(senders)
    return env


def _secrets_key_env(settings: Settings) -> dict[str, str]:
    """The key of the apps' own provider secrets for the node and worker: kept under HUB_HOME
    like the JWT secret, so `hub apps providers` in another shell seals with the same one."""
    key = resolve_secrets_key(settings)
    return {"HUB_SECRETS_KEY": key} if key else {}


def _vapid_env(settings: Settings) -> dict[str, str]:
    """A VAPID key for Web Push, made once and kept under HUB_HOME (browsers' subscriptions
    are bound to it), unless the operator set one."""
    if settings.vapid_private_key is not None:
        return {}
    path = settings.home / "vapid.json"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        private_key, public_key = generate_vapid_keys()
        path.touch(mode=0o600)
        path.write_text(json.dumps({"private_key": private_key, "public_key": public_key}))
    return {"HUB_VAPID_PRIVATE_KEY": json.loads(path.read_text())["private_key"]}


def _sandbox_port(settings: Settings) -> int:
    preferred = settings.port + 1
    return preferred if port_is_free(preferred, "127.0.0.1") else free_port()


def _start_sandbox(
    settings: Settings, env: dict[str, str], hub_url: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the sandbox on the port after the hub's (or a free one) and wait until it listens.
    A port can be taken between the check and the bind; then another is tried."""
    port = _sandbox_port(settings)
    for _ in range(3):
        sandbox_url = f"http://127.0.0.1:{port}"
        env.update(_sandbox_env(settings, sandbox_url))
        child = _spawn(
            ["sandbox", "--port", str(port), "--hub-url", hub_url, "--auto-complete"], env
        )
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return child, sandbox_url
            time.sleep(0.1)
        _stop([child])
        port = free_port()
    raise CommandError("the sandbox provider could not start")


def _banner(runtime: Runtime, url: str, sandbox_url: str, api_key: str) -> str:
    settings = runtime.settings
    secret = runtime.jwt_secret
    creator = issue_token(secret, CREATOR.user_id, CREATOR.role, TOKEN_TTL, name=CREATOR.name)
    fans = [issue_token(secret, f.user_id, f.role, TOKEN_TTL, name=f.name) for f in FANS]
    currency = "NGN" if "NGN" in settings.currencies else settings.currencies[0]
    admin = issue_token(secret, ADMIN.user_id, ADMIN.role, TOKEN_TTL, name=ADMIN.name)
    lines = [
        "",
        f"Hub is running at {url}  (Socket.IO on the same port, path /socket.io/)",
        f"  PostgreSQL {runtime.database_url.replace('+asyncpg', '')}",
        f"  Redis      {runtime.redis_url}",
        "",
        "Open the pages in a browser; the sign-in page signs in a demo user with one click:",
        f"  {url}/app/                 sign in",
        f"  {url}/app/creator          creator dashboard: live tip alerts, earnings, payouts,",
        "                                   and the overlay URL for OBS (Stream overlay)",
        f"  {url}/app/fan?creator={CREATOR.user_id}   fan: wallet, top-up, tips, pay-per-view",
        f"  {url}/app/admin            admin: fee, revenue, top creators, users online",
        "  (each tab signs in on its own: the creator and a fan can sit side by side)",
        "",
        "Demo users (tokens valid 7 days):",
        f"  creator  {CREATOR.user_id:<14} {creator}",
        *(f"  fan      {fan.user_id:<14} {token}" for fan, token in zip(FANS, fans, strict=True)),
        f"  admin    {ADMIN.user_id:<14} {admin}",
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
        f"Top up through the sandbox provider ({sandbox_url}): this prints a checkout_url;",
        "open it and press Pay, and watch the fan's balance change:",
        "",
        f"  curl -sS -X POST {url}/api/v1/payments \\",
        f"    -H 'Authorization: Bearer {fans[0]}' \\",
        '    -H "Idempotency-Key: $(date +%s%N)" -H "Content-Type: application/json" \\',
        f'    -d \'{{"amount": 250000, "currency": "{currency}", "provider": "paystack"}}\'',
        "",
        "  (no browser? curl -X POST <checkout_url>/pay does what the Pay button does)",
        "",
        "The platform's side: an API key of the default app (publish, read, admin; made for",
        "this run, the last run's is revoked). Notify the creator, then read their log:",
        f"  export HUB_API_KEY={api_key}",
        "",
        f"  curl -sS -X POST {url}/api/v1/notifications \\",
        '    -H "Authorization: Bearer $HUB_API_KEY" \\',
        '    -H "Idempotency-Key: $(date +%s%N)" -H "Content-Type: application/json" \\',
        f'    -d \'{{"user_id": "{CREATOR.user_id}", "type": "follower.new", '
        '"data": {"name": "Ada"}}\'',
        "",
        f'  curl -sS "{url}/api/v1/events?user_id={CREATOR.user_id}&after=0" \\',
        '    -H "Authorization: Bearer $HUB_API_KEY"',
        "",
        "Watch any user's events from another terminal (it recovers what it missed when",
        "restarted with the id it printed last):",
        f"  .venv/bin/hub watch --url {url} --token <token> [--last-event-id N]",
        "",
        f"API reference: {url}/openapi.json and docs/api.md",
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
        api_key = asyncio.run(seed_key(runtime))
        env = {
            "HUB_LOG_FORMAT": "text",  # a person reads this terminal; production logs JSON
            **os.environ,
            "HUB_DATABASE_URL": runtime.database_url,
            "HUB_REDIS_URL": runtime.redis_url,
            "HUB_JWT_SECRET": runtime.jwt_secret,
            "HUB_DEV_SIGNIN": "true",  # one-click demo sign-in on the pages (never in production)
            # a platform's webhook receiver on this machine (never in production)
            "HUB_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            # Pages on any loopback port (a front-end's dev server) may open sockets.
            "HUB_CORS_ORIGINS": os.environ.get("HUB_CORS_ORIGINS", DEV_ORIGINS),
            **_vapid_env(settings),
            **_secrets_key_env(settings),
        }
        url = f"http://{settings.host}:{settings.port}"
        sandbox, sandbox_url = _start_sandbox(settings, env, url)
        children.append(sandbox)
        children.append(_spawn(["serve"], env))
        children.append(_spawn(["worker"], env))
        _wait_ready(url, children, timeout=60)
        print(_banner(runtime, url, sandbox_url, api_key), flush=True)
        creator_token = issue_token(runtime.jwt_secret, CREATOR.user_id, CREATOR.role, TOKEN_TTL)
        essential = list(children)
        watcher = _spawn(
            ["watch", "--url", url, "--token", creator_token, "--label", CREATOR.user_id], env
        )
        children.append(watcher)
        watching = True
        while not stopping:
            if any(child.poll() is not None for child in essential):
                print("hub dev: a child process exited; stopping", file=sys.stderr)
                return 1
            if watching and watcher.poll() is not None:  # a disconnect or ban of the creator
                watching = False
                print("hub dev: the tip watcher stopped; the rest runs on", file=sys.stderr)
            time.sleep(0.2)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(children)
        if runtime.embedded is not None:
            runtime.embedded.stop()
        print("hub dev: stopped", file=sys.stderr, flush=True)
