"""Webhook ingest: Paystack-signed `charge.success` for pending top-ups, one in ten a duplicate
of an earlier delivery: throughput at saturation (closed loop), p99 to 2xx at 500/s (open loop),
and a check on the ledger that every top-up was credited exactly once.

    python -m bench.webhooks [--seconds 10] [--workers 32] [--rate 500] [--runs 3] [--card-tips]

`--card-tips`: the payments are card tips to 20 creators instead of top-ups, so that each
delivery credits the fan's wallet and tips from it (checked too: every acknowledged tip made
once); written as `webhooks-card-tips`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

from bench.common import (
    PAYSTACK_SECRET,
    Services,
    cpu_between,
    create_users,
    log,
    percentile,
    run,
    runs_wanted,
    start_hub,
    summarise,
    usage,
    write_result,
)
from bench.httpclient import HttpConnection, Load, closed_loop, open_loop

FANS = 200
AMOUNT = 5_000
DUPLICATE_EVERY = 10


CREATORS = [f"wcreator-{i:02d}" for i in range(20)]


async def pending_payments(
    database_url: str, fans: list[str], count: int, tag: str, card_tips: bool = False
) -> list[str]:
    """`count` pending top-ups (as ledger.payments.create_payment makes them), in bulk; or card
    tips to CREATORS at a 10 % fee."""
    import asyncpg

    references = [f"pay_bench_{tag}_{i}" for i in range(count)]
    details = [
        json.dumps({"creator_id": CREATORS[i % len(CREATORS)], "message": None, "fee_bps": 1000})
        if card_tips
        else "{}"
        for i in range(count)
    ]
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(
            "INSERT INTO payments (reference, user_id, provider, amount, currency, purpose,"
            " details)"
            " SELECT r, u, 'paystack', $3, 'NGN', $4, d::jsonb"
            " FROM unnest($1::text[], $2::text[], $5::text[]) AS t(r, u, d)",
            references,
            [fans[i % len(fans)] for i in range(count)],
            AMOUNT,
            "tip" if card_tips else "topup",
            details,
        )
    finally:
        await connection.close()
    return references


def deliveries(references: list[str], first_id: int, rng: random.Random) -> list[bytes]:
    """Bodies in sending order: each reference once, and a copy of an earlier delivery after
    every nine (10 % duplicates)."""
    bodies: list[bytes] = []
    unique: list[bytes] = []
    for i, reference in enumerate(references):
        body = json.dumps(
            {
                "event": "charge.success",
                "data": {
                    "id": first_id + i,
                    "reference": reference,
                    "amount": AMOUNT,
                    "currency": "NGN",
                    "status": "success",
                    "channel": "card",
                },
            },
            separators=(",", ":"),
        ).encode()
        unique.append(body)
        bodies.append(body)
        if len(bodies) % DUPLICATE_EVERY == DUPLICATE_EVERY - 1:
            bodies.append(rng.choice(unique))
    return bodies


def sender(bodies: list[bytes]) -> Any:
    from providers.signatures import sign_paystack

    signatures = [sign_paystack(body, PAYSTACK_SECRET) for body in bodies]

    async def send(connection: HttpConnection, n: int) -> tuple[int, bytes, Any]:
        if n >= len(bodies):
            raise IndexError("out of prepared deliveries")
        status, payload = await connection.request(
            "POST",
            "/webhooks/paystack",
            {"Content-Type": "application/json", "x-paystack-signature": signatures[n]},
            bodies[n],
        )
        return status, payload, n

    return send


async def check_ledger(database_url: str, references: list[str]) -> dict[str, Any]:
    import asyncpg

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        row = await connection.fetchrow(
            """
            SELECT count(*) FILTER (WHERE p.status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE p.status <> 'succeeded') AS not_succeeded,
                   (SELECT count(*) FROM transfers t
                     WHERE t.reference = ANY (SELECT 'payment:' || unnest($1::text[])))
                       AS credits,
                   (SELECT count(*) FROM (
                       SELECT t.reference FROM transfers t
                        WHERE t.reference = ANY (SELECT 'payment:' || unnest($1::text[]))
                        GROUP BY t.reference HAVING count(*) > 1) d) AS credited_twice,
                   (SELECT count(*) FROM tips s JOIN payments y ON y.id = s.payment_id
                     WHERE y.reference = ANY ($1::text[])) AS tips
              FROM payments p WHERE p.reference = ANY ($1::text[])
            """,
            references,
        )
        entries = await connection.fetchval(
            """
            SELECT count(*) FROM entries e JOIN transfers t ON t.id = e.transfer_id
             JOIN accounts a ON a.id = e.account_id
             WHERE a.kind = 'wallet' AND t.reference = ANY (SELECT 'payment:' || unnest($1::text[]))
            """,
            references,
        )
    finally:
        await connection.close()
    return {**dict(row), "wallet_entries": entries}


def statuses(load: Load) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in load.outcomes:
        counts[str(outcome.status)] = counts.get(str(outcome.status), 0) + 1
    return counts


async def one_run(
    services: Services,
    fans: list[str],
    run_index: int,
    seconds: float,
    workers: int,
    rate: int,
    profile: bool,
    card_tips: bool = False,
) -> dict[str, Any]:
    rng = random.Random(run_index)
    sat_refs = await pending_payments(
        services.database_url, fans, 25_000, f"s{run_index}", card_tips
    )
    half_refs = await pending_payments(
        services.database_url, fans, int(rate * seconds), f"h{run_index}", card_tips
    )
    sat_bodies = deliveries(sat_refs, 10**9 * (run_index + 1), rng)
    half_bodies = deliveries(half_refs, 10**9 * (run_index + 1) + 500_000, rng)
    server = start_hub(services, HUB_PAYSTACK_SECRET_KEY=PAYSTACK_SECRET)
    try:
        recording = None
        if profile:
            from bench.profiles import Recording

            recording = Recording(server.pid, "webhooks", seconds)
        before, pg_before = server.usage(), usage(services.postgres_pids())
        saturated = await closed_loop(
            "127.0.0.1", server.port, sender(sat_bodies), workers, seconds
        )
        after, pg_after = server.usage(), usage(services.postgres_pids())
        if recording is not None:
            recording.finish()
        await asyncio.sleep(2)
        saturation = len(saturated.ok(200)) / saturated.seconds
        # The target is p99 at 500/s; a hub that cannot take that is measured at half its
        # saturation instead (bounded, and says what it can do).
        rate_used = rate if saturation >= 1.25 * rate else max(1, int(saturation / 2))
        half_bodies = half_bodies[: int(rate_used * seconds * 1.2)]
        half = await open_loop("127.0.0.1", server.port, sender(half_bodies), rate_used, seconds)
        await asyncio.sleep(1)
    finally:
        server.stop()
    answered = saturated.ok(200, 201, 202, 204)
    half_ok = [o.latency_ms for o in half.ok(200, 201, 202, 204)]
    # A delivery answered 2xx must have credited its top-up exactly once; one that was not
    # answered (the provider would retry it) may or may not have; none may be credited twice.
    acked = sorted(
        {json.loads(sat_bodies[o.context])["data"]["reference"] for o in saturated.ok(200)}
        | {json.loads(half_bodies[o.context])["data"]["reference"] for o in half.ok(200)}
    )
    check = await check_ledger(services.database_url, acked)
    everything = await check_ledger(services.database_url, sat_refs + half_refs)
    refusals = sorted(
        {
            o.body[:200].decode(errors="replace")
            for o in saturated.outcomes + half.outcomes
            if o.status >= 300
        }
    )[:3]
    wall = after.at - before.at
    result = {
        "throughput_per_s": len(answered) / saturated.seconds,
        "saturation_statuses": statuses(saturated),
        "saturation_errors": len(saturated.errors),
        "saturation_p99_ms": percentile([o.latency_ms for o in answered], 99),
        "hub_cpu_share_at_saturation": (after.cpu - before.cpu) / wall,
        "postgres_cpu_share_at_saturation": cpu_between(pg_before, pg_after) / wall,
        "hub_cpu_per_webhook_ms": (after.cpu - before.cpu) / len(answered) * 1000
        if answered
        else None,
        "rate_target": rate,
        "rate": rate_used,
        "rate_statuses": statuses(half),
        "rate_errors": len(half.errors),
        "rate_p50_ms": percentile(half_ok, 50),
        "rate_p99_ms": percentile(half_ok, 99),
        "topups_acknowledged": len(acked),
        "topups_credited_once": check["credits"] == len(acked)
        and check["credited_twice"] == 0
        and check["wallet_entries"] == len(acked)
        and everything["credited_twice"] == 0,
        # a card tip per acknowledged delivery, none for another (tips has one row a payment)
        "card_tips_made_once": None
        if not card_tips
        else check["tips"] == len(acked) and everything["tips"] == everything["credits"],
        "ledger_check": check,
        "refusals": refusals,
    }
    log(
        f"webhooks: {result['throughput_per_s']:.0f}/s at saturation "
        f"({result['saturation_statuses']}), at {rate_used}/s p99 {result['rate_p99_ms']:.1f} ms "
        f"({result['rate_statuses']}), credited once: {result['topups_credited_once']}, "
        f"card tips once: {result['card_tips_made_once']} {check}"
    )
    return result


async def main_async(
    services: Services,
    runs: int,
    seconds: float,
    workers: int,
    rate: int,
    profile: bool,
    card_tips: bool = False,
) -> dict[str, Any]:
    fans = [f"wfan-{i:04d}" for i in range(FANS)]
    await create_users(services.database_url, fans, "fan")
    await create_users(services.database_url, CREATORS, "creator")
    results = []
    for run_index in range(runs):
        started = time.monotonic()
        result = await one_run(
            services,
            fans,
            run_index,
            seconds,
            workers,
            rate,
            profile and run_index == 0,
            card_tips,
        )
        result["run"] = run_index
        results.append(result)
        log(f"webhooks run {run_index + 1}: {time.monotonic() - started:.0f} s")
    return {
        "workers": workers,
        "seconds": seconds,
        "duplicates_share": 1 / DUPLICATE_EVERY,
        "runs": results,
        "summary": summarise(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--card-tips", action="store_true", help="card tips, not top-ups")
    args = parser.parse_args()
    with Services() as services:
        payload = run(
            main_async(
                services,
                args.runs,
                args.seconds,
                args.workers,
                args.rate,
                args.profile,
                args.card_tips,
            )
        )
    write_result("webhooks-card-tips" if args.card_tips else "webhooks", payload)


if __name__ == "__main__":
    main()
