"""The suite's own guards against hanging: a live server that will not stop fails its caller
with what it waits for, and a test that never ends ends the run with every task's stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]


async def test_a_server_whose_shutdown_hangs_fails_its_stop_saying_where() -> None:
    never = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await never.wait()  # a shutdown step that never ends

    server = LiveServer(Starlette(lifespan=lifespan))
    await server.start()
    with pytest.raises(RuntimeError) as stopped:
        await server.stop(within=1.0)
    assert "did not stop within 1 s" in str(stopped.value)
    assert "await never.wait()" in str(stopped.value)  # where the stuck task waits
    assert server._task is not None and server._task.done()


def test_a_test_that_never_ends_ends_the_run_with_every_task_stack(tmp_path: Path) -> None:
    (tmp_path / "test_stuck.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            async def waits_for_nothing():
                await asyncio.Event().wait()

            async def test_stuck():
                await waits_for_nothing()
            """
        )
    )
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.watchdog", "-p", "no:cacheprovider"),
            *("-o", "asyncio_mode=auto", "--rootdir", str(tmp_path), str(tmp_path)),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HUB_TEST_LIMIT": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "test_stuck.py::test_stuck has not finished after 2 s" in run.stderr
    assert "in waits_for_nothing" in run.stderr  # the task's own stack, not only the threads'
