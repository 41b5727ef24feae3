"""schemathesis against the OpenAPI document a live hub serves: every route, without a token and
with a valid one of each role; no answer is a 5xx, and every 4xx is in the error shape.

The fuzzed hub has a database of its own (and a Redis database number of its own): an admin's
token may change the platform fee or refund whatever payment ids it guesses, which must not touch
what the other tests read.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hub.embedded import free_port
from ledger.accounts import Role
from ledger.content import create_content
from ledger.db import make_engine, make_sessions, unit_of_work
from ledger.migrate import upgrade
from ledger.money import Money
from tests.conftest import (
    LiveServer,
    Services,
    create_user,
    hub_server,
    make_settings,
    sandbox_server,
    scratch_database,
    token,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 30  # per operation and phase


@pytest.fixture(scope="module")
async def fuzzed(services: Services) -> AsyncIterator[LiveServer]:
    async with scratch_database(services, "hub_fuzz") as database:
        await asyncio.to_thread(upgrade, database)
        engine = make_engine(database)
        sessions = make_sessions(engine)
        await create_user(sessions, "fuzz-creator", Role.CREATOR)
        await create_user(sessions, "fuzz-fan", Role.FAN, fund=Money(1_000_000, "NGN"))
        async with unit_of_work(sessions) as uow:
            for n in range(3):
                await create_content(uow.session, "fuzz-creator", f"Film {n}", Money(500, "NGN"))
        await engine.dispose()
        hub_port, sandbox_port = free_port(), free_port()
        sandbox = sandbox_server(hub_port, sandbox_port)  # the providers, on loopback
        server = hub_server(
            make_settings(
                services,
                sandbox.url,
                port=hub_port,
                database_url=database,
                redis_url=urlsplit(services.redis_url)._replace(path="/7").geturl(),
            )
        )
        await sandbox.start()
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
            await sandbox.stop()


# Half of the generated values come from these, so that the cases get past "no such creator"
# and "unknown currency" into the logic behind them.
CONFIG = """
[dictionaries.creators]
values = ["fuzz-creator", "fuzz-fan"]
[dictionaries.currencies]
values = ["NGN", "USD"]
[dictionaries.providers]
values = ["paystack", "stripe", "sandbox"]
[dictionaries.ids]
values = [1, 2, 3]

[parameters]
"path.creator_id" = { dictionary = "creators", probability = 0.5 }
"body.creator_id" = { dictionary = "creators", probability = 0.5 }
"body.currency" = { dictionary = "currencies", probability = 0.6 }
"query.currency" = { dictionary = "currencies", probability = 0.5 }
"body.provider" = { dictionary = "providers", probability = 0.5 }
"path.provider" = { dictionary = "providers", probability = 0.5 }
"path.content_id" = { dictionary = "ids", probability = 0.5 }
"""


@pytest.mark.parametrize(
    "who", [None, ("fuzz-fan", "fan"), ("fuzz-creator", "creator"), ("fuzz-admin", "admin")]
)
async def test_schemathesis_finds_no_server_error_and_only_shaped_errors(
    fuzzed: LiveServer, tmp_path: Path, who: tuple[str, str] | None
) -> None:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        f"{fuzzed.url}/openapi.json",
        "--checks",
        "not_a_server_error,error_shape",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "12",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--no-color",
    ]
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    if who is not None:
        command += ["-H", f"Authorization: Bearer {token(*who)}"]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.hub.fuzz_checks", "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-20_000:]
