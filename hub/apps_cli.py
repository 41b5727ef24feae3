"""`hub apps`: the apps a deployment serves and their API keys, from the operator's shell.

    hub apps list
    hub apps create ID [--name NAME]
    hub apps tokens APP --issuer ISS (--new-secret | --jwks-url URL) [--audience AUD]
    hub apps set APP [--fee-bps N] [--currencies NGN,USD] [--rate-limit 50/second]
                     [--origins https://a.example,https://b.example]   ("default": the deployment's)
    hub apps keys APP list
    hub apps keys APP create --scope publish --scope read [--label TEXT]
    hub apps keys APP rotate KEY_ID [--overlap SECONDS]
    hub apps keys APP revoke KEY_ID
    hub apps providers APP list
    hub apps providers APP set paystack|stripe [--base-url URL]   (secrets on stdin, one a line)
    hub apps providers APP remove paystack|stripe
    hub apps secrets-key                                          (a new HUB_SECRETS_KEY)

A new key's secret is printed alone on stdout (shown once: only its hash is kept), what it is
on stderr; listings are JSON lines.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from hub.settings import Settings
from ledger.app_providers import SECRETS
from ledger.apps import Scope

DEFAULT_OVERLAP = 24 * 3600


class AppsCommandError(Exception):
    pass


def add_arguments(apps: argparse.ArgumentParser) -> None:
    actions = apps.add_subparsers(dest="apps_action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the apps, as JSON lines")
    create = actions.add_parser("create", help="a new app")
    create.add_argument("app_id", metavar="ID", help="1-40 of a-z, 0-9 and -")
    create.add_argument("--name", help="what people call it (default: the id)")
    tokens = actions.add_parser(
        "tokens", help="how the app's user tokens are verified: an HS256 secret or a JWKS URL"
    )
    tokens.add_argument("app_id", metavar="APP")
    tokens.add_argument("--issuer", required=True, help="the `iss` of the app's tokens")
    how = tokens.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--new-secret", action="store_true", help="HS256 with a new secret (printed once)"
    )
    how.add_argument("--jwks-url", help="RS256/ES256 with the keys published at this URL")
    tokens.add_argument("--audience", help="the `aud` the tokens must carry, if any")
    change = actions.add_parser(
        "set",
        help="what the app sets for itself (fee, currencies, server API limit, origins); "
        "`default` gives a setting back to the deployment",
    )
    change.add_argument("app_id", metavar="APP")
    change.add_argument("--fee-bps", help="the platform fee on its users' tips and sales, 0-5000")
    change.add_argument("--currencies", help="comma-separated, among HUB_CURRENCIES")
    change.add_argument("--rate-limit", help="its server API's limit, such as 50/second")
    change.add_argument(
        "--origins", help="comma-separated browser origins of its pages (`default`: none)"
    )
    keys = actions.add_parser("keys", help="an app's API keys: list, create, rotate, revoke")
    keys.add_argument("app_id", metavar="APP")
    keys.add_argument("key_action", choices=["list", "create", "rotate", "revoke"])
    keys.add_argument("key_id", nargs="?", type=int, metavar="KEY_ID", help="(rotate, revoke)")
    keys.add_argument(
        "--scope",
        action="append",
        choices=[scope.value for scope in Scope],
        help="(create) repeat for several; default publish and read",
    )
    keys.add_argument("--label", help="(create) what the key is for")
    keys.add_argument(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP,
        help=f"(rotate) seconds the old key keeps working (default {DEFAULT_OVERLAP})",
    )
    _provider_arguments(actions)


def _provider_arguments(actions: Any) -> None:
    providers = actions.add_parser(
        "providers",
        help="the app's own Paystack or Stripe account (instead of the deployment's): list, "
        "set (its secrets read from stdin, one a line), remove",
    )
    providers.add_argument("app_id", metavar="APP")
    providers.add_argument("provider_action", choices=["list", "set", "remove"])
    providers.add_argument("provider", nargs="?", choices=sorted(SECRETS), help="(set, remove)")
    providers.add_argument(
        "--base-url", help="(set) the provider's API elsewhere than its own (a test server)"
    )
    actions.add_parser(
        "secrets-key", help="a new HUB_SECRETS_KEY, which encrypts the apps' provider secrets"
    )


def _provider_secrets(settings: Settings, args: argparse.Namespace) -> None:
    """What `hub apps providers APP set` needs from outside the database: the cipher, and the
    secrets, read from stdin (never from the command line, which other users can see)."""
    from hub.runtime import resolve_secrets_key
    from ledger.app_providers import secrets_cipher

    if args.provider is None:
        raise AppsCommandError(f"`hub apps providers APP {args.provider_action}` needs a PROVIDER")
    if args.provider_action != "set":
        return
    key = resolve_secrets_key(settings)
    if key is None:
        raise AppsCommandError(
            "set HUB_SECRETS_KEY (`hub apps secrets-key` prints one) here and on every node "
            "and worker: an app's provider secrets are stored encrypted with it"
        )
    args.cipher = secrets_cipher(key)
    args.secrets = {}
    for name in SECRETS[args.provider]:
        if sys.stdin.isatty():
            print(f"{args.provider} {name}: ", end="", file=sys.stderr, flush=True)
        args.secrets[name] = sys.stdin.readline().strip()
        if not args.secrets[name]:
            raise AppsCommandError(
                f"{args.provider} needs {', '.join(SECRETS[args.provider])} on stdin, one a line"
            )
    public = settings.public_url or f"http://{settings.host}:{settings.port}"
    args.webhook_url = f"{public.rstrip('/')}/apps/{args.app_id}/webhooks/{args.provider}"


def run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from hub.runtime import resolve

    if args.apps_action == "secrets-key":
        from cryptography.fernet import Fernet

        print(Fernet.generate_key().decode())
        return 0
    runtime = resolve(settings)
    if args.apps_action == "providers" and args.provider_action != "list":
        _provider_secrets(settings, args)
    if args.apps_action == "set":
        args.changes = _changes(settings, args)
    if args.apps_action == "keys" and args.key_action in ("rotate", "revoke") and not args.key_id:
        raise AppsCommandError(f"`hub apps keys APP {args.key_action}` needs a KEY_ID")
    try:
        return asyncio.run(_run(runtime.database_url, args))
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        raise AppsCommandError(f"cannot reach the database: {type(exc).__name__}: {exc}") from None


async def _run(database_url: str, args: argparse.Namespace) -> int:
    from ledger import apps
    from ledger.db import make_engine, make_sessions, unit_of_work
    from ledger.errors import LedgerError

    engine = make_engine(database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessions(engine)) as uow:
            session = uow.session
            if args.apps_action == "list":
                own = {a.app_id: a for a in await apps.all_app_settings(session)}
                for app in await apps.list_apps(session):
                    _line({**app.as_json(), **own[app.id].as_json()})
                return 0
            if args.apps_action == "create":
                app = await apps.create_app(session, args.app_id, args.name or args.app_id)
                _line(app.as_json())
                return 0
            if args.apps_action == "set":
                _line(
                    {
                        "app_id": args.app_id,
                        **(
                            await apps.set_app_settings(session, args.app_id, **args.changes)
                        ).as_json(),
                    }
                )
                return 0
            if args.apps_action == "providers":
                return await _providers(session, args)
            if args.apps_action == "tokens":
                secret = secrets.token_urlsafe(48) if args.new_secret else None
                config = await apps.set_tokens(
                    session,
                    args.app_id,
                    args.issuer,
                    secret=secret,
                    jwks_url=args.jwks_url,
                    audience=args.audience,
                )
                if secret is None:
                    _line(config.as_json())
                    return 0
                print(json.dumps(config.as_json()), file=sys.stderr)
                print(secret)
                return 0
            if args.key_action == "list":
                for key in await apps.list_keys(session, args.app_id):
                    _line(key.as_json())
                return 0
            if args.key_action == "revoke":
                revoked = await apps.revoke_key(session, args.app_id, args.key_id)
                _line(revoked.as_json())
                return 0
            if args.key_action == "rotate":
                key, secret = await apps.rotate_key(session, args.app_id, args.key_id, args.overlap)
            else:
                scopes = tuple(Scope(s) for s in (args.scope or ["publish", "read"]))
                key, secret = await apps.create_key(session, args.app_id, scopes, args.label)
        print(json.dumps(key.as_json()), file=sys.stderr)
        print(secret)
        return 0
    except LedgerError as exc:
        raise AppsCommandError(exc.message) from None
    finally:
        await engine.dispose()


async def _providers(session: Any, args: argparse.Namespace) -> int:
    from ledger import app_providers

    if args.provider_action == "list":
        for account in await app_providers.list_app_providers(session, args.app_id):
            _line(account.as_json())
        return 0
    if args.provider_action == "remove":
        if not await app_providers.remove_app_provider(session, args.app_id, args.provider):
            raise AppsCommandError(f"the app {args.app_id} has no {args.provider} account")
        _line({"app_id": args.app_id, "provider": args.provider, "removed": True})
        return 0
    account = await app_providers.set_app_provider(
        session, args.cipher, args.app_id, args.provider, args.secrets, args.base_url
    )
    # where the provider's dashboard must send this account's webhooks
    _line({**account.as_json(), "webhook_url": args.webhook_url})
    return 0


def _changes(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The settings `hub apps set` was given, checked against what the deployment allows."""
    from hub.ratelimit import parse_limits

    changes: dict[str, Any] = {}
    if args.fee_bps is not None:
        try:
            changes["fee_bps"] = None if args.fee_bps == "default" else int(args.fee_bps)
        except ValueError:
            raise AppsCommandError(
                "--fee-bps: a whole number of basis points, or default"
            ) from None
    if args.currencies is not None:
        listed = None
        if args.currencies != "default":
            listed = [c.strip().upper() for c in args.currencies.split(",") if c.strip()]
            unknown = [c for c in listed if c not in settings.currencies]
            if unknown:
                raise AppsCommandError(
                    f"--currencies: {', '.join(unknown)} not among HUB_CURRENCIES "
                    f"({', '.join(settings.currencies)})"
                )
        changes["currencies"] = listed
    if args.rate_limit is not None:
        if args.rate_limit != "default":
            try:
                parse_limits(args.rate_limit)
            except ValueError:
                raise AppsCommandError(
                    f"--rate-limit: {args.rate_limit!r} is not a rate limit such as 50/second"
                ) from None
        changes["rate_limit_server"] = None if args.rate_limit == "default" else args.rate_limit
    if args.origins is not None:
        changes["allowed_origins"] = (
            []
            if args.origins == "default"
            else [o.strip().rstrip("/") for o in args.origins.split(",") if o.strip()]
        )
    if not changes:
        raise AppsCommandError(
            "`hub apps set APP` needs --fee-bps, --currencies, --rate-limit or --origins"
        )
    return changes


def _line(record: dict[str, Any]) -> None:
    print(json.dumps(record))
