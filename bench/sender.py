"""Outbound webhooks: how fast one worker (`hub worker`) sends a backlog of deliveries to a
platform's receiver on 127.0.0.1 that answers 204 at once, and what it costs the worker and
PostgreSQL; beside it, a bare Node sender (bench/peer-node/sender.mjs) POSTing the same signed
bodies to the same receiver with the same discipline (64 users' queues at a time, each user's
in seq order) and no database: the HTTP floor. The receiver (bench/peer-node/receiver.mjs)
counts what arrives and checks each user's order.

    python -m bench.sender [--users 1000] [--per-user 20] [--runs 3]

Each run writes `users * per-user` events for users of the default app with one endpoint
wanting every event (the trigger on `events` writes the deliveries in their transaction), then
starts a worker and times it from its first attempt to its last (`webhook_attempts`), CPU read
at the same moments.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import time
from typing import Any

import psutil

from bench.common import (
    _STARTED,
    PEER,
    PYTHON,
    Server,
    Services,
    cpu_between,
    create_users,
    ensure_peer_installed,
    free_port,
    hub_env,
    hub_root,
    log,
    run,
    runs_wanted,
    scratch_file,
    summarise,
    usage,
    write_result,
)

WAIT_SECONDS = 300  # a run that has not sent everything by then is reported as such


def start_receiver(services: Services) -> Server:
    ensure_peer_installed()
    port = free_port()
    log_path = services.home / f"receiver-{port}.log"
    process = subprocess.Popen(
        ["node", "receiver.mjs"],
        cwd=PEER,
        env={**os.environ, "RECEIVER_PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _STARTED.append(process.pid)
    server = Server("receiver", port, process, log_path)
    deadline = time.monotonic() + 30
    while b"receiver listening" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the receiver did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return server


async def receiver_call(receiver: Server, method: str, path: str) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(base_url=receiver.url, timeout=10) as client:
        response = await client.request(method, path)
        return response.json() if response.content else {}


async def backlog(services: Services, receiver: Server, users: list[str], per_user: int) -> str:
    """The endpoint (a fresh secret) and `per_user` events for each user, written the hub's
    way (ledger.events.record_events, 2,000 a transaction); returns the secret."""
    import asyncpg

    from ledger.db import asyncpg_dsn, make_engine, make_sessions, unit_of_work
    from ledger.events import record_events

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
    try:
        await connection.execute("DELETE FROM webhook_endpoints")
        await connection.execute(
            "INSERT INTO webhook_endpoints (app_id, url, secret) VALUES ('default', $1, $2)",
            f"{receiver.url}/hook",
            secret,
        )
    finally:
        await connection.close()
    engine = make_engine(services.database_url)
    sessions = make_sessions(engine)
    pending = [(u, "bench.event", {"n": n}) for n in range(per_user) for u in users]
    try:
        for start in range(0, len(pending), 2_000):
            async with unit_of_work(sessions) as uow:
                await record_events(uow.session, pending[start : start + 2_000])
    finally:
        await engine.dispose()
    return secret


async def progress(services: Services) -> tuple[int, int, float | None, float | None]:
    """(delivered, still pending, first attempt, last attempt) as PostgreSQL saw them."""
    import asyncpg

    from ledger.db import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
    try:
        row = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered,"
            " count(*) FILTER (WHERE status = 'pending') AS pending,"
            " (SELECT extract(epoch FROM min(attempted_at)) FROM webhook_attempts) AS first,"
            " (SELECT extract(epoch FROM max(attempted_at)) FROM webhook_attempts) AS last"
            " FROM webhook_deliveries"
        )
        assert row is not None
        first = float(row["first"]) if row["first"] is not None else None
        last = float(row["last"]) if row["last"] is not None else None
        return int(row["delivered"]), int(row["pending"]), first, last
    finally:
        await connection.close()


def start_worker(services: Services) -> Server:
    """`hub worker`, allowed to send to 127.0.0.1 (development's setting)."""
    log_path = services.home / f"worker-{time.monotonic_ns()}.log"
    env = hub_env(services, free_port(), HUB_WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
    process = subprocess.Popen(
        [PYTHON, "-m", "hub", "worker"],
        cwd=hub_root(),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _STARTED.append(process.pid)
    return Server("worker", 0, process, log_path)


async def hub_run(
    services: Services, receiver: Server, total: int, profile: bool = False
) -> dict[str, Any]:
    """A worker against the backlog: from its first attempt to its last (py-spied for 20 s
    from its first attempt with `profile`)."""
    worker = start_worker(services)
    process, log_path = worker.process, worker.log_path
    try:
        while (await progress(services))[2] is None:  # its first attempt
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited: {log_path.read_text()[-2000:]}")
            await asyncio.sleep(0.02)
        cpu_before = worker.usage()
        pg_before = usage(services.postgres_pids())
        recording = None
        if profile:
            from bench.profiles import Recording

            recording = Recording(worker.pid, "sender-worker", 20)
        deadline = time.monotonic() + WAIT_SECONDS
        delivered, pending, first, last = await progress(services)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            delivered, pending, first, last = await progress(services)
        cpu_after = worker.usage()
        pg_after = usage(services.postgres_pids())
        if recording is not None:
            recording.finish()
    finally:
        worker.stop()
    assert first is not None and last is not None
    seconds = max(last - first, 1e-3)
    worker_cpu = cpu_between(cpu_before, cpu_after)
    return {
        "delivered": delivered,
        "left": pending,
        "seconds": round(seconds, 2),
        "per_second": round(delivered / seconds, 1),
        "worker_cpu_ms_per_delivery": round(worker_cpu * 1000 / max(delivered, 1), 3),
        "postgres_cpu_ms_per_delivery": round(
            cpu_between(pg_before, pg_after) * 1000 / max(delivered, 1), 3
        ),
        "worker_rss_mib": round(cpu_after.rss / 2**20, 1),
        "receiver": await receiver_call(receiver, "GET", "/stats"),
        "complete": delivered == total,
    }


async def peer_run(services: Services, receiver: Server, secret: str) -> dict[str, Any]:
    """The same deliveries, by the bare Node sender."""
    import asyncpg

    from ledger.db import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
    try:
        rows = await connection.fetch(
            "SELECT event_id, user_id, payload FROM webhook_deliveries ORDER BY user_id, seq"
        )
    finally:
        await connection.close()
    with scratch_file(".jsonl") as path:
        path.write_text("".join(json.dumps(dict(row)) + "\n" for row in rows))
        done = await asyncio.to_thread(
            subprocess.run,
            ["node", "sender.mjs"],
            cwd=PEER,
            env={
                **os.environ,
                "TARGET_URL": f"{receiver.url}/hook",
                "SECRET": secret,
                "DELIVERIES": str(path),
                "LANES": "64",
            },
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
            check=True,
        )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "delivered": answer["sent"],
        "failed": answer["failed"],
        "seconds": round(answer["seconds"], 2),
        "per_second": round(answer["sent"] / answer["seconds"], 1),
        "cpu_ms_per_delivery": round(answer["cpu_ms"] / max(answer["sent"], 1), 3),
        "receiver": await receiver_call(receiver, "GET", "/stats"),
    }


async def one_run(
    services: Services, number: int, users: int, per_user: int, profile: bool
) -> tuple[Any, Any]:
    receiver = start_receiver(services)
    try:
        names = [f"wh-{number}-{i:05d}" for i in range(users)]
        await create_users(services.database_url, names, "fan")
        secret = await backlog(services, receiver, names, per_user)
        log(f"run {number}: {users * per_user} deliveries waiting; a worker sends them")
        hub = await hub_run(services, receiver, users * per_user, profile)
        log(f"  hub: {json.dumps(hub)}")
        await receiver_call(receiver, "POST", "/reset")
        peer = await peer_run(services, receiver, secret)
        log(f"  node: {json.dumps(peer)}")
        return hub, peer
    finally:
        receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--profile", action="store_true", help="py-spy the worker (first run)")
    args = parser.parse_args()
    hub_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    for number in range(1, args.runs + 1):
        with Services() as services:  # a fresh database each run (its migrations run here)
            profile = args.profile and number == 1
            hub, peer = run(one_run(services, number, args.users, args.per_user, profile))
        hub_runs.append(hub)
        peer_runs.append(peer)
    write_result(
        "sender",
        {
            "command": f"python -m bench.sender --users {args.users} --per-user "
            f"{args.per_user} --runs {args.runs}",
            "deliveries": args.users * args.per_user,
            "hub": {"runs": hub_runs, "summary": summarise(hub_runs)},
            "node": {"runs": peer_runs, "summary": summarise(peer_runs)},
            "cpus": psutil.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
