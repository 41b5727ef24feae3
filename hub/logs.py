"""Logging: one JSON object per line, and no secret in any of them.

Request lines carry the request id, the user id, the route (its template, not the raw path),
the status and the duration. Every line passes through `redact`, which removes what must never
be written down: bearer tokens and JWTs, webhook secrets and signatures, provider keys, card
numbers — whatever the code that logged it thought it was doing.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.metrics import HTTP_DURATION

user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_SECRETS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"(?i)bearer\s+\S+"),
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"\b[sr]k_(?:test|live)_[A-Za-z0-9_]+"),
    re.compile(r"\bovl_[A-Za-z0-9_-]+"),
    re.compile(r"\bv1,[A-Za-z0-9+/=]{20,}"),  # Standard Webhooks signature
    re.compile(r"\bv1=[0-9a-fA-F]{32,}"),  # Stripe signature
    re.compile(r"\b[0-9a-fA-F]{64,}\b"),  # raw HMAC digests (Paystack's SHA-512 and others)
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),  # card numbers
]
_STANDARD = set(vars(logging.makeLogRecord({})))


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub("[redacted]", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id, user_id = request_id_var.get(), user_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if user_id:
            entry["user_id"] = user_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str, fmt: str = "json") -> None:
    """Root logging for a hub process; uvicorn's loggers go through it too."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the access line below replaces it


access_log = logging.getLogger("hub.access")


class AccessLog:
    """One line per HTTP request: request id, user id, route, status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_token = request_id_var.set(scope.get("state", {}).get("request_id"))
        user_token = user_id_var.set(None)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            elapsed = time.perf_counter() - started
            HTTP_DURATION.labels(
                getattr(route, "path", "unmatched"), scope["method"], str(status)
            ).observe(elapsed)
            access_log.info(
                "%s %s %s",
                scope["method"],
                getattr(route, "path", "unmatched"),
                status,
                extra={
                    "method": scope["method"],
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)
