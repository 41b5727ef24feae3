"""A test that has not finished (setup, call and teardown together) after LIMIT seconds ends the
run, after printing what every thread and every task of the event loop was doing: a hang costs
minutes and says where it is, instead of running into CI's limit and saying nothing.

LIMIT is far above the slowest test (HUB_TEST_LIMIT to change it). tests/conftest.py
registers it."""

from __future__ import annotations

import asyncio
import faulthandler
import io
import linecache
import os
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

LIMIT = float(os.environ.get("HUB_TEST_LIMIT", "600"))
_loop: asyncio.AbstractEventLoop | None = None  # the tests' loop, once a test ran on it
_at_exit: list[Any] = []  # called before the run ends (stopping the embedded servers)
_config: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config


def on_hang(stop: Any) -> None:
    """Run `stop()` before a hung run ends (the embedded PostgreSQL and Redis)."""
    _at_exit.append(stop)


@pytest.fixture(autouse=True)
async def _the_loop() -> None:
    global _loop
    _loop = asyncio.get_running_loop()


def describe_tasks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every task of the loop (the running one by default), each with the chain of awaits it
    is suspended in, outermost first (Task.print_stack shows only the task's own frame)."""
    out = io.StringIO()
    for task in asyncio.all_tasks(loop):
        print(f"--- {task.get_name()}", file=out)
        for frame in _awaits(task.get_coro()):
            code = frame.f_code
            print(
                f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}', file=out
            )
            line = linecache.getline(code.co_filename, frame.f_lineno).strip()
            if line:
                print(f"    {line}", file=out)
    return out.getvalue()


def _awaits(awaitable: Any) -> Iterator[FrameType]:
    for _ in range(64):  # a chain of awaits, each a coroutine, generator or async generator
        frame = _first(awaitable, "cr_frame", "gi_frame", "ag_frame")
        if frame is None:
            return
        yield frame
        inner = _first(awaitable, "cr_await", "gi_yieldfrom", "ag_await")
        if inner is not None and _first(inner, "cr_frame", "gi_frame", "ag_frame") is None:
            # `await anext(gen)` (an async context manager's exit) hides the generator it
            # resumes: take it from the manager
            inner = getattr(frame.f_locals.get("self"), "gen", inner)
        awaitable = inner


def _first(thing: Any, *names: str) -> Any:
    return next((found for name in names if (found := getattr(thing, name, None))), None)


def _hung(nodeid: str) -> None:
    capture = _config.pluginmanager.getplugin("capturemanager") if _config else None
    if capture is not None:  # the terminal's own stderr again, not the test's captured one
        capture.suspend_global_capture(in_=False)
    out = sys.__stderr__
    assert out is not None
    print(f"\n\n*** {nodeid} has not finished after {LIMIT:.0f} s: the run ends ***", file=out)
    faulthandler.dump_traceback(file=out, all_threads=True)
    if _loop is not None:
        print("\n*** the event loop's tasks ***", file=out)
        try:
            print(describe_tasks(_loop), file=out)
        except RuntimeError as exc:  # the loop changed its tasks while they were read
            print(f"(could not read them: {exc})", file=out)
    out.flush()
    for stop in _at_exit:
        try:
            stop()
        except Exception as exc:
            print(f"stopping {stop!r}: {exc}", file=out)
    os._exit(3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    timer = threading.Timer(LIMIT, _hung, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
