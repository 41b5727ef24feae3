"""How a hub node is served by uvicorn: one set of options for `hub serve` and the tests, and an
HTTP protocol that bounds the request head.

uvicorn's httptools protocol holds a request's headers in memory however long they grow (its h11
protocol stops at `h11_max_incomplete_event_size`, and is slower). BoundedHttpToolsProtocol reads
that same option as its limit: a request line and headers above it are answered 431 and the
connection closed, having held at most the limit and one read more.
"""

from __future__ import annotations

import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hub.errors import error_body
from hub.settings import Settings


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0  # received while the head is incomplete: what the parser may be holding
    _head_size = 0  # the request line and headers parsed so far
    _in_head = True

    @property
    def _head_limit(self) -> int:
        return self.config.h11_max_incomplete_event_size or 16 * 1024

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _grow(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self._head_limit:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, "request_head_too_large", self._too_large())
            else:
                self._refuse(400, "invalid_http", "this is not a valid HTTP request")
            return
        except httptools.HttpParserError:
            self._refuse(400, "invalid_http", "this is not a valid HTTP request")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self._head_limit:
            self._refuse(431, "request_head_too_large", self._too_large())

    def _too_large(self) -> str:
        limit = self._head_limit
        return f"the request line and headers are larger than this hub takes ({limit} bytes)"

    def _refuse(self, status: int, type_: str, message: str) -> None:
        """Answer in the API's error shape and close: the parser cannot go on. One line in the
        log at INFO, as the access log would have said."""
        self.logger.info("refused a request: %s %s", status, type_)
        body = json.dumps(error_body(type_, message)).encode()
        reason = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `hub serve` and the tests' servers pass to uvicorn, besides the app and address."""
    return {
        "http": BoundedHttpToolsProtocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # The app believes X-Forwarded-For itself, from HUB_TRUSTED_PROXIES (hub.middleware):
        # uvicorn's own reading would come first, with its own list.
        "proxy_headers": False,
        # Engine.IO pings every socket already: a second WebSocket-level ping per socket (a
        # task and a frame each) buys nothing (docs/benchmarks.md).
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        "lifespan": "on",
    }
