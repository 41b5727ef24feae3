"""A lean Socket.IO load client: Engine.IO v4 / Socket.IO v5 over WebSocket on raw asyncio
protocols (no task per connection), so one process holds 10,000 sockets on one core and
timestamps every event it receives with the system-wide monotonic clock.

Run by bench.common.LoadClient as `python -m bench.loadclient`: one JSON command per line on
stdin, one JSON answer per line on stdout. Commands:

  connect  {url, users, role, token_secret?, tokens?, last_ids?, viewing?, concurrency, timeout,
            spread?}
  count    {}                      events received since the last mark
  mark     {}                      forget the events so far, start the CPU clock
  dump     {path}                  write the events since the mark to `path` (JSON)
  close    {users?}                close those users' connections (all by default), abruptly
  positions {}                     each user's last event id (from events, else `recovered`)
  quit     {}
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import resource
import sys
import time
from typing import Any

from bench.common import raise_nofile

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
_KEY = base64.b64encode(b"hub-bench-client").decode()
_REQUEST = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
_now = time.monotonic_ns


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame (RFC 6455 §5.3: a client masks every frame)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65_536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = random.getrandbits(32).to_bytes(4, "big")
    if n:
        stream = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            n, "big"
        )
    return head + mask + payload


class Client:
    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.by_user: dict[str, list[Conn]] = {}
        # (connection index, event name, envelope id, receive ns, extra): extra is data.tip_id,
        # or data.transfer_id (ppv.sold)
        # for tips, and (recovered, missed) for `recovered`
        self.events: list[tuple[int, str, Any, int, Any]] = []
        self.mark_cpu = time.process_time()
        self.mark_wall = time.monotonic()


class Conn(asyncio.Protocol):
    __slots__ = (
        "auth",
        "buffer",
        "client",
        "closed",
        "connected_ns",
        "error",
        "fragments",
        "index",
        "last_id",
        "opened",
        "ready",
        "recovered_ns",
        "request",
        "transport",
        "upgraded",
        "user",
    )

    def __init__(self, client: Client, index: int, user: str, auth: dict[str, Any], request: bytes):
        self.client = client
        self.index = index
        self.user = user
        self.auth = auth
        self.request = request
        self.buffer = bytearray()
        self.fragments = bytearray()
        self.upgraded = False
        self.opened = False
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connected_ns = 0
        self.recovered_ns = 0
        self.error: str | None = None
        self.last_id: int | None = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("closed before the namespace answered")

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(status.decode(errors="replace"))
                self.close()
                return
            del buffer[: end + 4]
            self.upgraded = True
        while True:
            if len(buffer) < 2:
                return
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10], "big")
                offset = 10
            if second & 0x80:  # servers do not mask; skip a key if one came
                offset += 4
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            fin = first & 0x80
            if opcode == 0x0:
                self.fragments += payload
                if fin:
                    payload, self.fragments = bytes(self.fragments), bytearray()
                    self._message(payload)
            elif opcode in (0x1, 0x2):
                if fin:
                    self._message(payload)
                else:
                    self.fragments = bytearray(payload)
            elif opcode == 0x9:
                self._send(payload, 0xA)
            elif opcode == 0x8:
                self.close()
                return

    # protocol
    def _send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_frame(payload, opcode))

    def _message(self, payload: bytes) -> None:
        kind = payload[:1]
        if kind == b"4":  # a Socket.IO packet
            packet = payload[1:2]
            if packet == b"2":
                self._event(payload)
            elif packet == b"0":
                self.connected_ns = _now()
                if not self.ready.done():
                    self.ready.set_result(None)
            elif packet == b"4":
                self._fail(payload[2:].decode(errors="replace"))
            elif packet == b"1":
                self.close()
        elif kind == b"2":  # Engine.IO ping
            self._send(b"3" + payload[1:])
        elif kind == b"0":  # Engine.IO open: join the default namespace with our auth
            self.opened = True
            self._send(b"40" + json.dumps(self.auth, separators=(",", ":")).encode())
        elif kind == b"1":
            self.close()

    def _event(self, payload: bytes) -> None:
        at = _now()
        body = payload[2:]
        start = body.find(b"[")
        try:
            name, data = json.loads(body[start:])[:2]
        except (ValueError, TypeError):
            return
        event_id = None
        extra: Any = None
        if isinstance(data, dict):
            event_id = data.get("id")
            if name == "recovered":
                self.recovered_ns = at
                extra = (data.get("recovered"), data.get("missed"))
                position = data.get("last_event_id")
                if isinstance(position, int) and (self.last_id is None or position > self.last_id):
                    self.last_id = position
            else:
                inner = data.get("data")
                if isinstance(inner, dict):
                    extra = inner.get("tip_id", inner.get("transfer_id"))
                own = not str(name).startswith("public.")  # a channel's ids: no user's cursor
                if (
                    own
                    and isinstance(event_id, int)
                    and (self.last_id is None or event_id > self.last_id)
                ):
                    self.last_id = event_id
        self.client.events.append((self.index, name, event_id, at, extra))

    def _fail(self, error: str) -> None:
        if not self.ready.done():
            self.error = error
            self.ready.set_exception(ConnectionError(error))
            self.ready.exception()  # retrieved: no "never retrieved" warning

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


async def connect(client: Client, args: dict[str, Any]) -> dict[str, Any]:
    from urllib.parse import urlsplit

    loop = asyncio.get_running_loop()
    url = urlsplit(args["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = _REQUEST.format(
        path="/socket.io/?EIO=4&transport=websocket", host=f"{host}:{port}", key=_KEY
    ).encode()
    users: list[str] = args["users"]
    tokens: list[str] | None = args.get("tokens")
    last_ids: dict[str, int] = args.get("last_ids") or {}
    if tokens is None:
        from hub.auth import issue_token
        from ledger.accounts import Role

        role = Role(args.get("role", "fan"))
        tokens = [issue_token(args["token_secret"], u, role, 7200) for u in users]
    concurrency = int(args.get("concurrency", 200))
    timeout = float(args.get("timeout", 60))
    spread = float(args.get("spread", 0))  # start times spread evenly over this many seconds
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []
    made: list[Conn] = []
    started = time.monotonic()
    started_ns = _now()
    cpu0 = time.process_time()

    async def one(i: int, user: str, token: str) -> None:
        if spread:
            await asyncio.sleep(spread * i / max(1, len(users)))
        auth: dict[str, Any] = {"token": token}
        if args.get("viewing"):
            auth["viewing"] = args["viewing"]  # a creator's page (Hub: its public channel)
        if user in last_ids:
            auth["last_event_id"] = last_ids[user]
        async with gate:
            conn = Conn(client, len(client.conns), user, auth, request)
            client.conns.append(conn)
            client.by_user.setdefault(user, []).append(conn)
            made.append(conn)
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: conn, host, port), timeout=timeout
                )
                await asyncio.wait_for(asyncio.shield(conn.ready), timeout=timeout)
            except Exception as exc:
                failures.append(conn.error or f"{type(exc).__name__}: {exc}")
                conn.close()

    await asyncio.gather(
        *(one(i, u, t) for i, (u, t) in enumerate(zip(users, tokens, strict=True)))
    )
    connected_at = time.monotonic()
    # Readiness: every accepted connection has had its `recovered` (Hub sends it after
    # reading the user's position from the log; the Node peer at once).
    wait_recovered = bool(args.get("wait_recovered", True))
    deadline = time.monotonic() + timeout
    while wait_recovered and time.monotonic() < deadline:
        if all(c.recovered_ns or c.closed or c.error for c in made):
            break
        await asyncio.sleep(0.01)
    ok = [c for c in made if c.connected_ns and not c.closed]
    last_connect = max((c.connected_ns for c in ok), default=started_ns)
    last_recovered = max((c.recovered_ns for c in ok), default=0)
    return {
        "connected": len(ok),
        "failed": len(failures),
        "errors": sorted(set(failures))[:5],
        "seconds": (last_connect - started_ns) / 1e9,
        "seconds_to_recovered": (last_recovered - started_ns) / 1e9 if last_recovered else None,
        "not_recovered": sum(1 for c in ok if not c.recovered_ns),
        "wall": connected_at - started,
        "client_cpu": time.process_time() - cpu0,
        "started_ns": started_ns,
    }


def dump(client: Client, path: str) -> dict[str, Any]:
    conns = client.conns
    with open(path, "w") as handle:
        json.dump(
            [
                [conns[i].user, name, event_id, at, extra]
                for i, name, event_id, at, extra in client.events
            ],
            handle,
        )
    return {"events": len(client.events), **cpu(client)}


def cpu(client: Client) -> dict[str, Any]:
    wall = time.monotonic() - client.mark_wall
    used = time.process_time() - client.mark_cpu
    return {
        "client_cpu": used,
        "client_wall": wall,
        "client_cpu_share": used / wall if wall else 0.0,
        "client_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


async def serve() -> None:
    raise_nofile()
    client = Client()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    while True:
        line = await reader.readline()
        if not line:
            return
        request = json.loads(line)
        command = request.pop("cmd")
        try:
            if command == "connect":
                answer = await connect(client, request)
            elif command == "count":
                answer = {
                    "events": len(client.events),
                    "open": sum(not c.closed for c in client.conns),
                }
            elif command == "mark":
                client.events = []
                client.mark_cpu = time.process_time()
                client.mark_wall = time.monotonic()
                answer = {"ok": True}
            elif command == "dump":
                answer = dump(client, request["path"])
            elif command == "close":
                wanted = set(request.get("users") or client.by_user)
                for user in wanted:
                    for conn in client.by_user.get(user, []):
                        conn.close()
                await asyncio.sleep(0.2)
                answer = {"closed": len(wanted)}
            elif command == "positions":
                positions: dict[str, int] = {}
                for user, conns in client.by_user.items():
                    ids = [c.last_id for c in conns if c.last_id is not None]
                    if ids:
                        positions[user] = max(ids)
                answer = {"positions": positions}
            elif command == "quit":
                for conn in client.conns:
                    conn.close()
                out.write(b'{"ok": true}\n')
                out.flush()
                return
            else:
                answer = {"error": f"unknown command {command!r}"}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


def main() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
