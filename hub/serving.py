"""How a hub node is served by uvicorn: one set of options for `hub serve` and the tests, and an
HTTP protocol that bounds the request head.

uvicorn's httptools protocol holds a request's headers in memory however long they grow (its h11
protocol stops at `h11_max_incomplete_event_size`, and is slower). BoundedHttpToolsProtocol reads
that same option as its limit: a request line and headers above it are answered 431 and the
connection closed, having held at most the limit and one read more.

An answer that closes the connection while the request is still arriving (a 413 from
hub.middleware.BodyLimit, a 431) closes it the way nginx does, lingering: the answer is sent,
the sending side shut, and what the client still sends is read and dropped, for at most
LINGER_SECONDS or LINGER_BYTES, so that a client that writes its whole body before reading
(most do) reads the answer instead of a reset connection.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hub.errors import error_body
from hub.settings import Settings
from realtime.lean import SocketProtocol

LINGER_SECONDS = 5.0
LINGER_BYTES = 32 * 1024 * 1024


class _HeadTooLarge(Exception):
    pass


class _Lingering:
    """The transport an HTTP request's answer is written to: closing it while the request is
    still arriving shuts the sending side and drops the rest (see the module's docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if self._protocol.request_complete or self._transport.is_closing():
            self._transport.close()
        else:
            self._protocol.linger()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0  # received while the head is incomplete: what the parser may be holding
    _head_size = 0  # the request line and headers parsed so far
    _in_head = True
    request_complete = True  # no request is arriving (or the last one arrived whole)
    _dropping: int | None = None  # lingering: the bytes still allowed before closing
    _linger_timer: asyncio.TimerHandle | None = None

    def linger(self) -> None:
        if self._dropping is not None:
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer, then the end: the client reads both
        self._dropping = LINGER_BYTES
        self._linger_timer = asyncio.get_running_loop().call_later(
            LINGER_SECONDS, self.transport.close
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    @property
    def _head_limit(self) -> int:
        return self.config.h11_max_incomplete_event_size or 16 * 1024

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self.request_complete = False
        self._head_bytes = self._head_size = 0

    def on_message_complete(self) -> None:
        self.request_complete = True
        super().on_message_complete()

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
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            # The answer's transport (a WebSocket keeps the plain one).
            self.cycle.transport = _Lingering(self.transport, self)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._dropping is not None:
            self._dropping -= len(data)
            if self._dropping < 0:
                self.transport.close()
            return
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
        # WebSocket upgrades: Hub's sockets on its own endpoint, the rest to uvicorn's own.
        "ws": SocketProtocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # The app believes X-Forwarded-For itself, from HUB_TRUSTED_PROXIES (hub.middleware):
        # uvicorn's own reading would come first, with its own list.
        "proxy_headers": False,
        # Engine.IO pings every socket already: a second WebSocket-level ping per socket (a
        # task and a frame each) buys nothing (docs/benchmarks.md).
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        "lifespan": "on",
        # On SIGTERM: requests in flight get this long to finish, then are cancelled, and the
        # app shuts down (a connection left open by a client cannot hold the node forever).
        "timeout_graceful_shutdown": 10,
    }


# Young collections every 10,000 net allocations instead of 700, and a full collection only
# after 50 * 100 of them (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (10_000, 50, 100)


def settle_garbage_collector() -> None:
    """Once a node has started: what start-up made (modules, routes, models, compiled SQL, the
    app) lives as long as the process, so it is moved out of the collector's sight, and full
    collections are made rarer. Measured at 500 tips/s: a full collection scanned 190,000
    objects and paused every request for 80 to 110 ms, every second or two; after the freeze it
    scans about 48,000 (12 to 20 ms), and far less often. Reference counting still frees almost
    everything at once; only cycles wait for a collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
