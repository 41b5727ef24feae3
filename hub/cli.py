"""The `hub` command: dev, serve, worker, migrate, token, watch, apps, embedded."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from hub.embedded import EmbeddedError, port_is_free
from hub.settings import Settings, SettingsError, export_metrics_directory, load_settings


class CommandError(Exception):
    """A command cannot go on; the message is one line for the operator."""


def _check_port(settings: Settings) -> None:
    if not port_is_free(settings.port, settings.host):
        raise CommandError(
            f"port {settings.port} on {settings.host} is already in use "
            "(stop what holds it, or set HUB_PORT)"
        )


def _logging(settings: Settings) -> None:
    from hub.logs import configure

    configure(settings.log_level, settings.log_format)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app
    from hub.runtime import resolve
    from hub.serving import uvicorn_options
    from ledger.migrate import upgrade

    _check_port(settings)
    _logging(settings)
    runtime = resolve(settings)
    if settings.database_url is None:
        upgrade(runtime.database_url)  # the embedded database is ours to keep current
    metrics: str | None = None
    if settings.workers > 1:
        metrics = export_metrics_directory()
        target: object = "hub.app:from_environment"
    else:
        target = create_app(runtime)
    try:
        uvicorn.run(
            target,  # type: ignore[arg-type]
            factory=settings.workers > 1,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            log_level=settings.log_level,
            log_config=None,  # hub.logs configured the root logger: JSON lines, redacted
            access_log=False,
            **uvicorn_options(settings),
        )
    finally:
        if metrics is not None:  # the workers' metric files: nobody reads them once they end
            shutil.rmtree(metrics, ignore_errors=True)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from hub.runtime import build_provider_clients, push_config, resolve, retention, smtp_config
    from jobs.webhooks import WebhookConfig
    from jobs.worker import build_worker

    _logging(settings)
    runtime = resolve(settings)
    providers, _http = build_provider_clients(settings)
    worker = build_worker(
        database_url=runtime.database_url,
        redis_url=runtime.redis_url,
        providers=providers,
        smtp=smtp_config(settings),
        retention=retention(settings),
        push=push_config(settings),
        webhooks=WebhookConfig(allow_private=settings.webhook_allow_private_targets),
        burst=args.burst,
    )
    worker.run()
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from hub.runtime import resolve
    from ledger.migrate import upgrade

    runtime = resolve(settings)
    upgrade(runtime.database_url, args.revision)
    print(f"database at revision {args.revision}", file=sys.stderr)
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from hub.runtime import resolve
    from ledger.checks import CHECKS, run_checks
    from ledger.db import make_engine, make_sessions

    runtime = resolve(settings)

    async def check() -> list[object]:
        engine = make_engine(runtime.database_url, pool_size=1)
        try:
            async with make_sessions(engine)() as session:
                return list(await run_checks(session))
        finally:
            await engine.dispose()

    violations = asyncio.run(check())
    for violation in violations:
        print(f"FAILED: {violation.check}")  # type: ignore[attr-defined]
        for row in violation.rows:  # type: ignore[attr-defined]
            print(f"    {row}")
    print(f"{len(CHECKS) - len(violations)} of {len(CHECKS)} ledger invariants hold")
    return 1 if violations else 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from hub.runtime import resolve
    from hub.status import gather_status, render

    runtime = resolve(settings)
    try:
        status = asyncio.run(gather_status(runtime.database_url, runtime.redis_url))
    except (OSError, TimeoutError, SQLAlchemyError, RedisError) as exc:
        raise CommandError(f"cannot read the status: {type(exc).__name__}: {exc}") from None
    print(json.dumps(status, default=str, indent=2) if args.json else render(status))
    return 0


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from hub.runtime import resolve

    runtime = resolve(settings)
    if args.action == "failed":
        if args.ids or args.all:
            raise CommandError("`hub jobs failed` takes no ids and no --all")
        try:
            jobs = asyncio.run(_failed_jobs(runtime.database_url, args.limit))
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            raise CommandError(
                f"cannot read the failed jobs: {type(exc).__name__}: {exc}"
            ) from None
        for job in jobs:
            print(json.dumps(job, default=str))
        return 0
    if bool(args.ids) == args.all:
        raise CommandError("`hub jobs retry` takes the ids of failed jobs, or --all")
    retried: list[dict[str, object]] = []
    refused: list[str] = []
    try:
        asyncio.run(
            _retry_failed_jobs(
                runtime.database_url, runtime.redis_url, args.ids, args.all, retried, refused
            )
        )
    except (OSError, TimeoutError, SQLAlchemyError, RedisError) as exc:
        refused.append(f"cannot retry: {type(exc).__name__}: {exc}")  # after those done
    for job in retried:
        print(json.dumps(job, default=str))
    for message in refused:
        print(f"hub: {message}", file=sys.stderr)
    print(f"{len(retried)} failed job(s) enqueued again", file=sys.stderr)
    return 1 if refused else 0


async def _failed_jobs(database_url: str, limit: int) -> list[dict[str, object]]:
    from ledger.db import make_engine, make_sessions
    from ledger.operations import list_failed_jobs

    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessions(engine)() as session:
            return await list_failed_jobs(session, limit=limit)
    finally:
        await engine.dispose()


async def _retry_failed_jobs(
    database_url: str,
    redis_url: str,
    ids: list[int],
    every: bool,
    retried: list[dict[str, object]],
    refused: list[str],
) -> None:
    """Retry each entry (with --all, each one not retried yet) into `retried`, or say why not
    in `refused`; an unreachable database or Redis stops it with what was done so far."""
    from arq.connections import ArqRedis

    from jobs import deadletter
    from ledger.db import make_engine, make_sessions
    from ledger.errors import FailedJobAlreadyRetried, LedgerError
    from ledger.operations import unretried_failed_jobs

    engine = make_engine(database_url, pool_size=1)
    pool = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    sessions = make_sessions(engine)
    try:
        if every:
            async with sessions() as session:
                ids = await unretried_failed_jobs(session)
        for failed_id in ids:
            try:
                retried.append(await deadletter.retry(sessions, pool, failed_id, "hub jobs retry"))
            except FailedJobAlreadyRetried:
                if not every:  # with --all, another operator got there first: nothing to say
                    refused.append(f"failed job {failed_id} was already retried")
            except LedgerError as exc:
                refused.append(exc.message)
    finally:
        await pool.aclose()
        await engine.dispose()


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from sandbox.app import SandboxConfig, serve_sandbox
    except ModuleNotFoundError as exc:  # the production image leaves the development tools out
        if exc.name != "sandbox":
            raise
        raise CommandError(
            "the sandbox provider is a development tool and is not installed here: "
            "run it from a checkout of the source (make run)"
        ) from None

    config = SandboxConfig(
        paystack_secret_key=_secret(settings.paystack_secret_key),
        stripe_secret_key=_secret(settings.stripe_secret_key),
        stripe_webhook_secret=_secret(settings.stripe_webhook_secret),
        sandbox_webhook_secret=_secret(settings.standard_webhook_secrets.get("sandbox")),
        hub_url=args.hub_url or f"http://{settings.host}:{settings.port}",
        public_url=f"http://127.0.0.1:{args.port}",
        auto_complete=args.auto_complete,
    )
    _check_port_free(args.port)
    asyncio.run(serve_sandbox(config, "127.0.0.1", args.port))
    return 0


def _secret(value: object) -> str:
    if value is None:
        raise SettingsError(
            "the sandbox needs HUB_PAYSTACK_SECRET_KEY, HUB_STRIPE_SECRET_KEY, "
            "HUB_STRIPE_WEBHOOK_SECRET and a 'sandbox' entry in "
            "HUB_STANDARD_WEBHOOK_SECRETS"
        )
    return str(value.get_secret_value())  # type: ignore[attr-defined]


def _check_port_free(port: int) -> None:
    if not port_is_free(port):
        raise CommandError(f"port {port} on 127.0.0.1 is already in use")


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from hub.auth import issue_token
    from hub.runtime import resolve_secret
    from ledger.accounts import Role

    if args.ttl > settings.jwt_max_lifetime_seconds:
        raise CommandError(
            f"--ttl {args.ttl} is longer than the hub accepts "
            f"(HUB_JWT_MAX_LIFETIME_SECONDS={settings.jwt_max_lifetime_seconds})"
        )
    secret, issuer, audience = resolve_secret(settings), settings.jwt_issuer, settings.jwt_audience
    if args.app != "default":
        secret, issuer, audience = _app_token_settings(settings, args.app)
    token = issue_token(
        secret, args.sub, Role(args.role), args.ttl, issuer=issuer, audience=audience
    )
    print(token)
    return 0


def _app_token_settings(settings: Settings, app_id: str) -> tuple[str, str, str | None]:
    """An app's HS256 secret, issuer and audience, from the database."""
    from hub.runtime import resolve
    from ledger.apps import token_configs
    from ledger.db import make_engine, make_sessions

    async def read() -> list[Any]:
        engine = make_engine(resolve(settings).database_url, pool_size=1)
        try:
            async with make_sessions(engine)() as session:
                return await token_configs(session)
        finally:
            await engine.dispose()

    try:
        configs = asyncio.run(read())
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        raise CommandError(f"cannot reach the database: {type(exc).__name__}: {exc}") from None
    config = next((c for c in configs if c.app_id == app_id), None)
    if config is None:
        raise CommandError(f"the app {app_id} has no tokens of its own (hub apps tokens)")
    if config.secret is None:
        raise CommandError(f"the app {app_id}'s tokens are signed by its identity provider")
    return config.secret, config.issuer, config.audience


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    from hub.watch import watch

    url = args.url or f"http://{settings.host}:{settings.port}"
    return asyncio.run(watch(url, args.token, args.label, args.last_event_id))


def cmd_push(settings: Settings, args: argparse.Namespace) -> int:
    from hub.vapid import generate

    private_key, public_key = generate()
    print(f"HUB_VAPID_PRIVATE_KEY={private_key}")
    print(f"# public key (applicationServerKey, served by GET /api/v1/push/config): {public_key}")
    return 0


def cmd_apps(settings: Settings, args: argparse.Namespace) -> int:
    from hub.apps_cli import AppsCommandError, run

    try:
        return run(settings, args)
    except AppsCommandError as exc:
        raise CommandError(str(exc)) from None


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from hub.dev import run_dev

    return run_dev(settings)


def cmd_embedded(settings: Settings, args: argparse.Namespace) -> int:
    from hub.runtime import embedded_for

    embedded = embedded_for(settings)
    if args.action == "stop":
        embedded.stop(only_started=False)
        print("embedded PostgreSQL and Redis stopped", file=sys.stderr)
        return 0
    pg, redis = embedded.postgres.running_port(), embedded.redis.running_port()
    print(f"postgresql: {f'running on port {pg}' if pg else 'stopped'} ({embedded.postgres.data})")
    print(f"redis: {f'running on port {redis}' if redis else 'stopped'} ({embedded.redis.root})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub",
        description="Hub: real-time payments and notifications for creator platforms. "
        "Settings come from HUB_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_, description=help_)
        command.set_defaults(handler=handler)
        return command

    add("dev", cmd_dev, "run everything on embedded PostgreSQL and Redis, with demo data")
    add("serve", cmd_serve, "run the HTTP + Socket.IO server (uvicorn)")
    worker = add("worker", cmd_worker, "run the arq worker for follow-up jobs")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    migrate = add("migrate", cmd_migrate, "apply database migrations (Alembic)")
    migrate.add_argument("--revision", default="head")
    status = add("status", cmd_status, "one screen for an operator: nodes, backlog, jobs, books")
    status.add_argument("--json", action="store_true")
    jobs = add(
        "jobs",
        cmd_jobs,
        "jobs that failed for good (the dead-letter list): `failed` lists them, "
        "`retry ID...` or `retry --all` enqueues them again (each entry once)",
    )
    jobs.add_argument("action", choices=["failed", "retry"])
    jobs.add_argument("ids", nargs="*", type=int, metavar="ID", help="failed job ids (retry)")
    jobs.add_argument("--all", action="store_true", help="retry every entry not retried yet")
    jobs.add_argument("--limit", type=int, default=50, help="entries listed (failed)")
    add("check", cmd_check, "verify the ledger's invariants; exit 1 with a report if one fails")
    sandbox = add("sandbox", cmd_sandbox, "run the sandbox payment provider on 127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8001)
    sandbox.add_argument("--hub-url", help="where to send webhooks; default this hub's URL")
    sandbox.add_argument(
        "--auto-complete", action="store_true", help="complete transfers and refunds by itself"
    )
    token = add("token", cmd_token, "print a development token, alone on stdout")
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument("--role", required=True, choices=["fan", "creator", "admin"])
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument("--app", default="default", help="an app with its own HS256 tokens")
    watch = add("watch", cmd_watch, "connect as a user and print the events they receive")
    watch.add_argument("--token", required=True)
    watch.add_argument("--url", help="default http://HUB_HOST:HUB_PORT")
    watch.add_argument("--label", default="")
    watch.add_argument("--last-event-id", type=int, help="recover what was missed since this event")
    push = add(
        "push", cmd_push, "Web Push: `keys` prints a fresh VAPID private key and its public key"
    )
    push.add_argument("action", choices=["keys"])
    apps = add("apps", cmd_apps, "the apps (platforms) this hub serves and their API keys")
    from hub.apps_cli import add_arguments

    add_arguments(apps)
    embedded = add("embedded", cmd_embedded, "status or stop of the embedded services")
    embedded.add_argument("action", choices=["status", "stop"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "ttl", 1) <= 0:
        print("hub: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        return int(args.handler(settings, args))
    except SettingsError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2
    except (CommandError, EmbeddedError) as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
