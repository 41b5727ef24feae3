"""/metrics stays right when uvicorn runs several worker processes: any worker's answer sums
what every worker counted."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.embedded import free_port
from tests.conftest import JWT_SECRET, Services


async def test_two_workers_report_one_sum(services: Services, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=services.database_url,
        HUB_REDIS_URL=services.redis_url,
        HUB_JWT_SECRET=JWT_SECRET,
        HUB_PORT=str(port),
        HUB_WORKERS="2",
        HUB_LOG_LEVEL="warning",
        TMPDIR=str(tmp_path),  # where the workers' metric files go
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "serve",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            # New connections each time, so both workers answer some of them.
            for _ in range(30):
                async with httpx.AsyncClient(timeout=5) as fresh:
                    assert (await fresh.get(f"{url}/healthz")).status_code == 200
            counts = set()
            for _ in range(6):
                async with httpx.AsyncClient(timeout=5) as fresh:
                    text = (await fresh.get(f"{url}/metrics")).text
                match = re.search(
                    r'hub_http_request_duration_seconds_count\{method="GET",'
                    r'route="/healthz",status="200"\} (\d+)',
                    text,
                )
                assert match, text[:500]
                counts.add(int(float(match.group(1))))
        # Every scrape, whichever worker answered it, sees all the requests so far.
        assert min(counts) >= 31
        assert metric_folders(tmp_path)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    assert not metric_folders(tmp_path)  # the node took its metric files with it


def metric_folders(folder: Path) -> list[Path]:
    return list(folder.glob("hub-metrics-*"))
