"""Hostile requests at the edge: how long `/healthz` takes for everyone else on the node while
attackers send, back to back, the largest requests its limits allow in the shapes that cost the
most to refuse (issue 12). The peer is the same node idle, in the same run.

    python -m bench.edge [--seconds 5] [--attackers 8] [--runs 3]

Each run starts a hub (one process), measures /healthz alone, then under each attack in turn.
`replay` is the request of the original finding (5.5 MB, 300,000 unknown keys), answered 413 now;
BENCH_HUB_ROOT pointed at an older checkout measures what it did before the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    PAYSTACK_SECRET,
    ROOT,
    Services,
    create_users,
    log,
    percentile,
    run,
    runs_wanted,
    start_hub,
    summarise,
    token,
    write_result,
)
from bench.httpclient import HttpConnection

API_LIMIT = 256 * 1024  # the defaults of HUB_MAX_BODY_BYTES and HUB_MAX_WEBHOOK_BODY_BYTES
WEBHOOK_LIMIT = 1024 * 1024
DEPTH = 32  # HUB_JSON_MAX_DEPTH


def _fill(head: dict[str, Any], make: Callable[[int], str], limit: int) -> bytes:
    """`head` as a JSON object with one more field, `make(n)`'s JSON, as large as fits `limit`."""
    prefix = json.dumps(head, separators=(",", ":"))[:-1] + ","
    low, high = 1, limit
    while low < high:  # the largest n whose body fits
        middle = (low + high + 1) // 2
        if len(prefix) + len(make(middle)) + 1 <= limit:
            low = middle
        else:
            high = middle - 1
    return (prefix + make(low) + "}").encode()


def attacks(creator: str) -> dict[str, tuple[str, bytes, bool]]:
    """name → (path, body, signed in?)."""
    tip = {"creator_id": creator, "amount": 100, "currency": "NGN"}
    nested = "[" * (DEPTH - 2) + "1" + "]" * (DEPTH - 2)
    return {
        # Finding 2 as found: a 5.5 MB body of 300,000 unknown keys.
        "replay": (
            "/api/v1/tips",
            json.dumps({**tip, **{f"k{i}": i for i in range(300_000)}}).encode(),
            True,
        ),
        # The largest bodies the limits let through to the parser, by the shape that costs most:
        "unknown_keys": (
            "/api/v1/tips",
            _fill(tip, lambda n: ",".join(f'"k{i}":{i}' for i in range(n)), API_LIMIT),
            True,
        ),
        "numbers": (
            "/api/v1/tips",
            _fill(tip, lambda n: '"message":[' + ",".join(["1"] * n) + "]", API_LIMIT),
            True,
        ),
        "nesting": (
            "/api/v1/tips",
            _fill(tip, lambda n: '"message":[' + ",".join([nested] * n) + "]", API_LIMIT),
            True,
        ),
        "long_text": (
            "/api/v1/tips",
            _fill(tip, lambda n: '"message":"' + "x" * n + '"', API_LIMIT),
            True,
        ),
        # An unsigned webhook at its limit: read whole, then refused at the signature.
        "unsigned_webhook": (
            "/webhooks/paystack",
            _fill({"event": "charge.success"}, lambda n: '"pad":"' + "x" * n + '"', WEBHOOK_LIMIT),
            False,
        ),
    }


async def probe(port: int, seconds: float) -> list[float]:
    """GET /healthz every 20 ms for `seconds` on one keep-alive connection, as someone else on
    the node would: the latencies in ms."""
    latencies: list[float] = []
    connection = HttpConnection("127.0.0.1", port)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status, _ = await connection.request("GET", "/healthz", {})
            if status == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
    finally:
        connection.close()
    return latencies


async def probe_process(port: int, seconds: float) -> list[float]:
    """The probe in a process of its own: the attackers' writes (gigabytes a second for the
    replay) keep this process's loop busy, which would show as the node's latency."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.edge",
        "--probe",
        str(port),
        "--seconds",
        str(seconds),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    latencies: list[float] = json.loads(output)
    return latencies


async def attacker(
    port: int, path: str, body: bytes, headers: dict[str, str], stop: asyncio.Event
) -> dict[str, int]:
    statuses: dict[str, int] = {}
    connection = HttpConnection("127.0.0.1", port)
    try:
        while not stop.is_set():
            try:
                status, _ = await connection.request("POST", path, headers, body)
                key = str(status)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                key = type(exc).__name__  # a refusal that closed before the body was sent
                connection.close()
            statuses[key] = statuses.get(key, 0) + 1
    finally:
        connection.close()
    return statuses


async def phase(
    server: Any, seconds: float, attack: tuple[str, bytes, bool] | None, workers: int, fan: str
) -> dict[str, Any]:
    stop = asyncio.Event()
    before = server.usage()
    watcher = asyncio.create_task(probe_process(server.port, seconds))
    load: list[asyncio.Task[dict[str, int]]] = []
    if attack is not None:
        path, body, signed_in = attack
        headers = {"Content-Type": "application/json", "Idempotency-Key": "edge"}
        if signed_in:
            headers["Authorization"] = f"Bearer {token(fan)}"
        load = [
            asyncio.create_task(attacker(server.port, path, body, headers, stop))
            for _ in range(workers)
        ]
    latencies = await watcher
    stop.set()
    after = server.usage()
    counts: dict[str, int] = {}
    for result in await asyncio.gather(*load):
        for key, n in result.items():
            counts[key] = counts.get(key, 0) + n
    return {
        "healthz_p50_ms": percentile(latencies, 50),
        "healthz_p99_ms": percentile(latencies, 99),
        "healthz_max_ms": max(latencies) if latencies else None,
        "healthz_answered": len(latencies),
        "attack_per_s": sum(counts.values()) / seconds,
        "attack_statuses": counts,
        "attack_body_bytes": len(attack[1]) if attack else 0,
        "hub_cpu_share": (after.cpu - before.cpu) / (after.at - before.at),
        "hub_rss_mib": after.rss / 2**20,
    }


async def one_run(services: Services, seconds: float, workers: int) -> dict[str, Any]:
    fan, creator = "edge-fan", "edge-creator"
    server = start_hub(services, HUB_PAYSTACK_SECRET_KEY=PAYSTACK_SECRET)
    result: dict[str, Any] = {}
    try:
        await asyncio.sleep(1)
        result["idle"] = await phase(server, seconds, None, workers, fan)
        for name, attack in attacks(creator).items():
            result[name] = await phase(server, seconds, attack, workers, fan)
            log(
                f"edge {name}: healthz p99 {result[name]['healthz_p99_ms']} ms, max "
                f"{result[name]['healthz_max_ms']} ms; {result[name]['attack_statuses']}"
            )
    finally:
        server.stop()
    return result


async def main_async(services: Services, runs: int, seconds: float, workers: int) -> dict[str, Any]:
    await create_users(services.database_url, ["edge-creator"], "creator")
    await create_users(services.database_url, ["edge-fan"], "fan")
    results = []
    for run_index in range(runs):
        result = await one_run(services, seconds, workers)
        result["run"] = run_index
        results.append(result)
    return {
        "seconds": seconds,
        "attackers": workers,
        "runs": results,
        "summary": summarise(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--attackers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # a port: be the probe
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(asyncio.run(probe(args.probe, args.seconds))))
        return
    with Services() as services:
        payload = run(main_async(services, args.runs, args.seconds, args.attackers))
    write_result("edge", payload)


if __name__ == "__main__":
    main()
