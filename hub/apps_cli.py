"""`hub apps`: the apps a deployment serves and their API keys, from the operator's shell.

    hub apps list
    hub apps create ID [--name NAME]
    hub apps tokens APP --issuer ISS (--new-secret | --jwks-url URL) [--audience AUD]
    hub apps keys APP list
    hub apps keys APP create --scope publish --scope read [--label TEXT]
    hub apps keys APP rotate KEY_ID [--overlap SECONDS]
    hub apps keys APP revoke KEY_ID

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


def run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from hub.runtime import resolve

    runtime = resolve(settings)
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
                for app in await apps.list_apps(session):
                    _line(app.as_json())
                return 0
            if args.apps_action == "create":
                app = await apps.create_app(session, args.app_id, args.name or args.app_id)
                _line(app.as_json())
                return 0
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


def _line(record: dict[str, Any]) -> None:
    print(json.dumps(record))
