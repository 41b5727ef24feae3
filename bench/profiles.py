"""Where a process's time goes: py-spy samples it (attached by pid) and the collapsed stacks are
summed into the frames that cost the most, inclusive and self, and written under
bench/results/profiles/.

    python -m bench.profiles summarise bench/results/profiles/<name>.txt
    python -m bench.profiles attribute bench/results/profiles/<name>.txt
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.common import RESULTS, log

PROFILES = RESULTS / "profiles"


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Recording:
    """`py-spy record` on one pid for at most `seconds`; raw (collapsed) stacks to a file."""

    def __init__(self, pid: int, name: str, seconds: float, rate: int = 200) -> None:
        PROFILES.mkdir(parents=True, exist_ok=True)
        self.path = PROFILES / f"{name}.txt"
        self.process: subprocess.Popen[bytes] | None = None
        binary = py_spy()
        if binary is None:
            log("py-spy not installed: no profile")
            return
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def finish(self, timeout: float = 60) -> Path | None:
        if self.process is None:
            return None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        return self.path if self.path.exists() else None


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarise(path: Path, top: int = 25) -> dict[str, object]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        if leaf.startswith(("select (", "poll (", "run_forever (", "_run_once (")) and (
            "selectors" in leaf or "uvloop" in leaf
        ):
            idle += count
        own[leaf] += count
        for frame in set(frames):
            inclusive[frame] += count
    busy = max(1, total)
    return {
        "samples": total,
        "inclusive": [(f, round(100 * c / busy, 1)) for f, c in inclusive.most_common(top)],
        "self": [(f, round(100 * c / busy, 1)) for f, c in own.most_common(top)],
    }


_LIBRARIES = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("redis/", "redis-py"),
    ("limits/", "limits (rate limiter)"),
    ("jwt/", "PyJWT"),
    ("engineio/", "python-engineio"),
    ("socketio/", "python-socketio"),
    ("websockets/", "websockets (uvicorn's WebSocket)"),
    ("uvicorn/", "uvicorn"),
    ("starlette/", "starlette"),
    ("pydantic", "pydantic"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
    ("uvloop", "asyncio"),
    ("arq/", "arq"),
    ("prometheus_client/", "prometheus-client"),
    ("logging/", "logging"),
)
_OWN = (
    " (hub/",
    " (realtime/",
    " (ledger/",
    " (jobs/",
    "/work/main/hub/",
    "/work/main/realtime/",
    "/work/main/ledger/",
)


def attribute(path: Path, top: int = 20) -> dict[str, object]:
    """Each sample to (the innermost function of Hub's own code on its stack, the library its
    leaf frame is in): where the time is spent, and on whose behalf."""
    own: Counter[str] = Counter()
    library: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        mine = [f for f in frames if any(marker in f for marker in _OWN)]
        own[
            _frame_name(mine[-1]) if mine else "(no Hub frame: event loop, or SQLAlchemy greenlet)"
        ] += count
        leaf = frames[-1] if frames else ""
        name = next((label for marker, label in _LIBRARIES if marker in leaf), None)
        if name is None:
            name = "Hub's own code" if any(m in leaf for m in _OWN) else "other"
        library[name] += count
    busy = max(1, total)
    return {
        "samples": total,
        "own": [(f, round(100 * c / busy, 1)) for f, c in own.most_common(top)],
        "library": [(f, round(100 * c / busy, 1)) for f, c in library.most_common(top)],
    }


def render_attribution(summary: dict[str, object]) -> str:
    lines = [f"samples: {summary['samples']}", "", "innermost Hub function on the stack:"]
    lines += [f"  {pct:5.1f}  {frame}" for frame, pct in summary["own"]]  # type: ignore[attr-defined]
    lines += ["", "library of the leaf frame:"]
    lines += [f"  {pct:5.1f}  {frame}" for frame, pct in summary["library"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


def render(summary: dict[str, object]) -> str:
    lines = [f"samples: {summary['samples']} (py-spy, active threads only)", "", "inclusive %:"]
    lines += [f"  {pct:5.1f}  {frame}" for frame, pct in summary["inclusive"]]  # type: ignore[attr-defined]
    lines += ["", "self %:"]
    lines += [f"  {pct:5.1f}  {frame}" for frame, pct in summary["self"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "summarise":
        print(render(summarise(Path(sys.argv[2]), top=40)))
    elif len(sys.argv) == 3 and sys.argv[1] == "attribute":
        print(render_attribution(attribute(Path(sys.argv[2]))))
    else:
        print(__doc__)
