"""`hub check` on the live database, the 100-tips race, and migrations up and down."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from ledger.accounts import Role, ensure_user, user_is_current
from ledger.apps import create_app
from ledger.checks import run_checks
from ledger.content import create_content, purchase
from ledger.db import make_engine, make_sessions, unit_of_work
from ledger.errors import DuplicateTransfer
from ledger.funding import fund_wallet_for_development
from ledger.idempotency import transfer_reference
from ledger.migrate import alembic_config, downgrade, upgrade
from ledger.money import Money
from ledger.payments import Purpose, create_payment
from ledger.push import save_subscription
from ledger.tips import send_tip
from tests.conftest import JWT_SECRET, Services, auth, create_user, scratch_database
from tests.money import key


async def test_a_hundred_tips_from_a_wallet_that_pays_37(http, sessions, uid) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(37 * 1_000, "NGN"))
    responses = await asyncio.gather(
        *(
            http.post(
                "/api/v1/tips",
                json={"creator_id": creator, "amount": 1_000, "currency": "NGN"},
                headers={**auth(fan, "fan"), **key()},
            )
            for _ in range(100)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 37
    assert statuses.count(402) == 63
    assert all(
        r.json()["error"]["type"] == "insufficient_funds" for r in responses if r.status_code == 402
    )
    wallet = (await http.get("/api/v1/wallet", headers=auth(fan, "fan"))).json()["balances"]
    assert next(b for b in wallet if b["currency"] == "NGN")["balance"] == 0
    earnings = (await http.get("/api/v1/wallet", headers=auth(creator, "creator"))).json()
    ngn = next(
        b for b in earnings["balances"] if b["kind"] == "earnings" and b["currency"] == "NGN"
    )
    assert ngn["balance"] == 37 * 900  # money conserved: 37 x (1,000 - 10 % fee)


def hub_check(services: Services) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=services.database_url,
        HUB_REDIS_URL=services.redis_url,
        HUB_JWT_SECRET=JWT_SECRET,
    )
    return subprocess.run(
        [sys.executable, "-m", "hub", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_hub_check_passes_after_the_money_tests_and_catches_a_corruption(
    services: Services, sessions, uid
) -> None:
    """Runs late (the ledger tests after the hub tests), so it checks the books that every
    money test before it left behind."""
    result = await asyncio.to_thread(hub_check, services)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger invariants hold" in result.stdout

    user = uid("fan")
    await create_user(sessions, user, Role.FAN, fund=Money(500, "NGN"))
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE accounts SET balance = balance + 1 WHERE owner_id = :u AND currency = 'NGN'"
                " AND kind = 'wallet'"
            ),
            {"u": user},
        )
    try:
        broken = await asyncio.to_thread(hub_check, services)
        assert broken.returncode == 1
        assert "FAILED: every balance equals the sum of its entries" in broken.stdout
    finally:
        async with sessions() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE accounts SET balance = balance - 1 WHERE owner_id = :u "
                    "AND currency = 'NGN' AND kind = 'wallet'"
                ),
                {"u": user},
            )
    async with sessions() as session:
        assert await run_checks(session) == []


HEAD = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()


async def test_migrations_apply_from_empty_and_downgrade(services: Services) -> None:
    url = make_url(services.database_url)
    async with scratch_database(services, "hub_migrations") as scratch:
        name = make_url(scratch).database
        await asyncio.to_thread(upgrade, scratch)
        assert "body" in await _columns(url, name, "content")
        await asyncio.to_thread(downgrade, scratch, "0007")
        assert await _columns(url, name, "push_subscriptions") == set()
        await asyncio.to_thread(downgrade, scratch, "0006")
        assert "body" not in await _columns(url, name, "content")
        await asyncio.to_thread(downgrade, scratch, "0005")
        assert "retried_at" not in await _columns(url, name, "failed_jobs")
        await asyncio.to_thread(downgrade, scratch, "0004")
        await asyncio.to_thread(downgrade, scratch, "0003")
        await asyncio.to_thread(downgrade, scratch, "0002")
        await asyncio.to_thread(downgrade, scratch, "0001")
        await asyncio.to_thread(downgrade, scratch, "base")
        await asyncio.to_thread(upgrade, scratch)
        check = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password or None,
            database=name,
        )
        try:
            tables = {r["tablename"] for r in await check.fetch("SELECT tablename FROM pg_tables")}
            version = await check.fetchval("SELECT version_num FROM alembic_version")
            indexes = {
                r["indexname"] for r in await check.fetch("SELECT indexname FROM pg_indexes")
            }
        finally:
            await check.close()
        assert {"accounts", "entries", "payments", "webhook_events", "holds"} <= tables
        assert {"retried_at", "retried_by", "retry_job_id"} <= await _columns(
            url, name, "failed_jobs"
        )
        assert "payments_unconfirmed" in indexes
        assert {"push_subscriptions"} <= tables
        assert version == HEAD


async def _columns(url, database: str, table: str) -> set[str]:
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password or None,
        database=database,
    )
    try:
        rows = await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
        )
    finally:
        await connection.close()
    return {row["column_name"] for row in rows}


async def test_migration_0009_rewrites_old_references_and_keeps_them_guarded(
    services: Services,
) -> None:
    """A database written before 0009: wallet tips and purchases with `tip:<fan>:<key>` and
    `purchase:<buyer>:<key>` references, a card tip's `tip:payment:<reference>`, and a push
    endpoint with a tab. After the upgrade each old key still finds its transfer; a card
    tip's reference is untouched; the unsendable endpoint is gone; the downgrade restores."""
    async with scratch_database(services, "hub_migrations") as scratch:
        engine = make_engine(scratch)
        sessions = make_sessions(engine)

        labels: dict[int, str] = {}

        async def references() -> dict[str, str]:
            async with sessions() as session:
                rows = await session.execute(
                    text("SELECT id, reference FROM transfers WHERE id = ANY(:ids)"),
                    {"ids": list(labels)},
                )
                return {labels[row.id]: row.reference for row in rows}

        try:
            await asyncio.to_thread(upgrade, scratch, "0008")
            async with unit_of_work(sessions) as uow:
                s = uow.session
                for user, role in (
                    ("a", Role.FAN),
                    ("x:y", Role.FAN),
                    ("payment", Role.FAN),
                    ("cr", Role.CREATOR),
                ):
                    await _user_before_0018(s, user, role, "NGN")
                for fan in ("a", "x:y", "payment"):
                    await fund_wallet_for_development(
                        s, fan, Money(10_000, "NGN"), reference=f"funding:{fan}"
                    )
                for label, fan, reference in (
                    ("a", "a", "tip:a:b:K"),
                    ("xy", "x:y", "tip:x:y:z"),
                    ("payment-user", "payment", "tip:payment:K"),
                    ("card", "a", "tip:payment:PAYREF"),
                ):
                    sent = await send_tip(
                        s,
                        fan_id=fan,
                        creator_id="cr",
                        amount=Money(100, "NGN"),
                        message=None,
                        fee_bps=1000,
                        reference=reference,
                    )
                    labels[sent.sale.transfer.id] = label
                card = await create_payment(
                    s,
                    user_id="a",
                    provider="sandbox",
                    amount=Money(100, "NGN"),
                    purpose=Purpose.TIP,
                    details={},
                )
                await s.execute(
                    text(
                        "UPDATE tips SET payment_id = :payment FROM transfers t "
                        "WHERE t.id = tips.transfer_id AND t.reference = 'tip:payment:PAYREF'"
                    ),
                    {"payment": card.id},
                )
                item = await create_content(s, "cr", "Film", Money(300, "NGN"))
                bought = await purchase(
                    s, buyer_id="a", content_id=item.id, fee_bps=1000, reference="purchase:a:b:K"
                )
                labels[bought.sale.transfer.id] = "buy"
                for endpoint in ("https://push.example/ok", "https://push.example/\tbad"):
                    await save_subscription(s, "cr", endpoint, "p", "a")
            before = await references()

            await asyncio.to_thread(upgrade, scratch)
            assert await references() == {
                "a": transfer_reference("tip", "a", "b:K"),
                "xy": transfer_reference("tip", "x:y", "z"),
                "payment-user": transfer_reference("tip", "payment", "K"),
                "card": "tip:payment:PAYREF",
                "buy": transfer_reference("purchase", "a", "b:K"),
            }
            async with sessions() as session:
                endpoints = (
                    (await session.execute(text("SELECT endpoint FROM push_subscriptions")))
                    .scalars()
                    .all()
                )
            assert endpoints == ["https://push.example/ok"]
            # The same key again, through today's reference: the transfer exists already.
            with pytest.raises(DuplicateTransfer):
                async with unit_of_work(sessions) as uow:
                    await send_tip(
                        uow.session,
                        fan_id="a",
                        creator_id="cr",
                        amount=Money(100, "NGN"),
                        message=None,
                        fee_bps=1000,
                        reference=transfer_reference("tip", "a", "b:K"),
                    )
            async with sessions() as session:
                assert await run_checks(session) == []

            await asyncio.to_thread(downgrade, scratch, "0008")
            assert await references() == before
        finally:
            await engine.dispose()


async def _user_before_0018(session, user_id: str, role: Role, currency: str) -> None:
    """A user and their accounts as a database before 0018 holds them (no app): the
    ensure_user of today writes users.app_id."""
    await session.execute(
        text("INSERT INTO users (id, role) VALUES (:id, :role)"),
        {"id": user_id, "role": role.value},
    )
    kinds = ["wallet", "earnings"] if role is Role.CREATOR else ["wallet"]
    for kind in kinds:
        await session.execute(
            text("INSERT INTO accounts (owner_id, kind, currency) VALUES (:id, :kind, :currency)"),
            {"id": user_id, "kind": kind, "currency": currency},
        )


async def test_migration_0018_puts_every_existing_user_in_the_default_app(
    services: Services,
) -> None:
    """A deployment that knew no apps: after 0018 its users, their money and their logs are the
    default app's and work as before; the downgrade takes the apps away again."""
    async with scratch_database(services, "hub_migrations") as scratch:
        engine = make_engine(scratch)
        sessions = make_sessions(engine)
        try:
            await asyncio.to_thread(upgrade, scratch, "0017")
            async with unit_of_work(sessions) as uow:
                await _user_before_0018(uow.session, "old-fan", Role.FAN, "NGN")
                await _user_before_0018(uow.session, "old-creator", Role.CREATOR, "NGN")
                await fund_wallet_for_development(
                    uow.session, "old-fan", Money(5_000, "NGN"), reference="funding:old-fan"
                )
            await asyncio.to_thread(upgrade, scratch)
            async with sessions() as session:
                owners = dict((await session.execute(text("SELECT id, app_id FROM users"))).all())
                apps = (await session.execute(text("SELECT id FROM apps"))).scalars().all()
                events = await session.scalar(
                    text("SELECT count(*) FROM events WHERE user_id = 'old-fan'")
                )
            assert owners == {"old-fan": "default", "old-creator": "default"}
            assert apps == ["default"]
            assert events == 1  # the funding's balance.updated, still the fan's
            async with unit_of_work(sessions) as uow:  # today's code takes them as they are
                assert await user_is_current(uow.session, "old-fan", Role.FAN, ("NGN",))
                await ensure_user(uow.session, "old-creator", Role.CREATOR, ("NGN",), "Cee")
            async with sessions() as session:
                assert await run_checks(session) == []
            await asyncio.to_thread(downgrade, scratch, "0017")
            async with sessions() as session:
                columns = await session.scalar(
                    text(
                        "SELECT count(*) FROM information_schema.columns "
                        "WHERE table_name = 'users' AND column_name = 'app_id'"
                    )
                )
            assert columns == 0
        finally:
            await engine.dispose()


async def test_migration_0025_gives_an_apps_users_ids_of_their_own(services: Services) -> None:
    """Before 0025 user ids were unique across apps; after it, another app's users (and every
    row naming them) are stored as `<app>\\x1f<id>`, the default app's keep theirs, and the app
    may then have a user of an id the default app has too. The downgrade restores the old ids."""
    async with scratch_database(services, "hub_migrations") as scratch:
        engine = make_engine(scratch)
        sessions = make_sessions(engine)
        try:
            await asyncio.to_thread(upgrade, scratch, "0024")
            async with unit_of_work(sessions) as uow:
                await create_app(uow.session, "acme", "Acme")
                await ensure_user(uow.session, "alice", Role.FAN, ("NGN",), app_id="acme")
                await ensure_user(uow.session, "bob", Role.CREATOR, ("NGN",), app_id="acme")
                await ensure_user(uow.session, "carol", Role.FAN, ("NGN",))
                await fund_wallet_for_development(
                    uow.session, "alice", Money(5_000, "NGN"), reference="funding:alice"
                )
                await send_tip(
                    uow.session,
                    fan_id="alice",
                    creator_id="bob",
                    amount=Money(1_000, "NGN"),
                    message=None,
                    fee_bps=0,
                    reference="tip:alice:1",
                )
                await create_payment(  # a card tip still pending: its creator is read later
                    uow.session,
                    user_id="alice",
                    provider="sandbox",
                    amount=Money(700, "NGN"),
                    purpose=Purpose.TIP,
                    details={"creator_id": "bob", "message": None, "fee_bps": 0},
                )
                await uow.session.execute(
                    text(
                        "INSERT INTO idempotency_keys (caller_id, key, request_hash, created_at) "
                        "VALUES ('alice', 'k1', 'f', now()), (E'app\\x1facme', 'k2', 'f', now())"
                    )
                )

            async def stored() -> dict[str, object]:
                async with sessions() as session:

                    async def column(sql: str) -> list[str]:
                        return sorted((await session.execute(text(sql))).scalars())

                    return {
                        "users": await column("SELECT id FROM users"),
                        "owners": await column(
                            "SELECT DISTINCT owner_id FROM accounts WHERE owner_id IS NOT NULL"
                        ),
                        "logs": await column("SELECT DISTINCT user_id FROM events"),
                        "tips": await column("SELECT fan_id || ' ' || creator_id FROM tips"),
                        "details": await column(
                            "SELECT details->>'creator_id' FROM payments WHERE purpose = 'tip'"
                        ),
                        "callers": await column("SELECT caller_id FROM idempotency_keys"),
                    }

            before = await stored()
            await asyncio.to_thread(upgrade, scratch)
            alice, bob = "acme\x1falice", "acme\x1fbob"
            assert await stored() == {
                "users": sorted([alice, bob, "carol"]),
                "owners": sorted([alice, bob, "carol"]),
                "logs": sorted([alice, bob]),
                "tips": [f"{alice} {bob}"],
                "details": [bob],
                "callers": sorted([alice, "\x1facme"]),
            }
            async with sessions() as session:
                assert await run_checks(session) == []
            await asyncio.to_thread(downgrade, scratch, "0024")
            assert await stored() == before
            await asyncio.to_thread(upgrade, scratch)
            async with unit_of_work(sessions) as uow:  # the default app may now have an alice
                await ensure_user(uow.session, "alice", Role.FAN, ("NGN",))
                with pytest.raises(IntegrityError):  # and no id that names no app, or another
                    async with uow.session.begin_nested():
                        await ensure_user(uow.session, "dave", Role.FAN, ("NGN",), app_id="acme")
            async with sessions() as session:
                owners = dict((await session.execute(text("SELECT id, app_id FROM users"))).all())
            assert owners == {alice: "acme", bob: "acme", "carol": "default", "alice": "default"}
        finally:
            await engine.dispose()
