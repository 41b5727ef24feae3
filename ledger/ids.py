"""Whose user a user id names: a user id is unique within its app, not across apps.

Inside Hub (the tables, the event bus, rooms, Redis, logs) a user is known by their *stored
id*: the platform's own id for a user of the default app (so a deployment that knew no apps
keeps its ids), ``<app>\\x1f<id>`` for a user of any other app. No user id holds a control
character (tokens and the API refuse them) and no app id holds the separator, so two users of
two apps never share a stored id, and a stored id never looks like another app's.

A stored id never leaves Hub: the edges that read a user id (a token's ``sub``, a request's
path, query or body) turn it into the stored id with the caller's app, and everything that
goes out (HTTP bodies, socket packets, webhook bodies) passes through ``platform_json``, which
shows each stored id as the platform's own id. Since every text Hub takes in is refused when it
holds the separator (hub.http.json_object, the tokens' checks), the only strings in Hub's JSON
that hold it are stored ids. (An error message names one after a space, "no creator <id>", so a
stored id is shown as the platform's at the start of a string or after a space.)

An app's own provider account is named the same way (``<app>\x1fpaystack``,
ledger.app_providers): what is the app's is stored under its name, and shown as the provider's.
"""

from __future__ import annotations

import re

from ledger.accounts import DEFAULT_APP

SEPARATOR = "\x1f"
# A stored id of an app other than the default one, as JSON writes it (json.dumps and
# PostgreSQL both escape the separator as \u001f), at the start of a string or after a space
# (an error message's "no creator <id>"): its app id and separator are dropped. Neither a quote
# nor a space is ever part of an escape sequence, so what is dropped is never half of one.
_STORED_IN_JSON = re.compile(r'(?<=[" ])[a-z0-9][a-z0-9-]{0,39}\\u001f')
_ESCAPED = "\\u001f"


def stored_id(app_id: str, user_id: str) -> str:
    """The id under which the user `user_id` of the app `app_id` is stored."""
    return user_id if app_id == DEFAULT_APP else f"{app_id}{SEPARATOR}{user_id}"


def platform_id(stored: str) -> str:
    """The id the user's platform knows them by."""
    return stored[stored.find(SEPARATOR) + 1 :]


def owner_of(stored: str) -> tuple[str, str]:
    """(app id, the platform's id) of a stored id."""
    app_id, separator, user_id = stored.partition(SEPARATOR)
    return (app_id, user_id) if separator else (DEFAULT_APP, stored)


def platform_json(text: str) -> str:
    """JSON text as it leaves Hub: every stored id in it shown as its platform's id."""
    return _STORED_IN_JSON.sub("", text) if _ESCAPED in text else text
