"""Debian's Chromium, headless, driven by Playwright, against live hub servers on 127.0.0.1.

`make test` installs Chromium where it is missing (as root, as on CI) and the pages' Socket.IO
client (`make web`). Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from hub.routes.pages import VENDOR

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# The flags a headless Chromium needs on a machine with no network beyond loopback: without the
# background-networking ones it keeps trying Google's hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _missing(reason: str) -> None:
    # On CI (`.ci/run` sets CI=true) `make test` installs both, so a missing one is a broken
    # install that must fail the run, not a green run without browser tests.
    if os.environ.get("CI"):
        raise RuntimeError(f"CI: {reason}")
    pytest.skip(reason, allow_module_level=True)


if not Path(CHROMIUM).exists():
    _missing("Debian's chromium is not installed (`make test` installs it when run as root)")
if not VENDOR.exists():
    _missing("the pages' Socket.IO client is not installed (`make test` runs `make web`)")


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    yield chromium
    await chromium.close()


@pytest.fixture
async def profile(playwright: Playwright, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A browser with a profile on disk, as a person's is: Chromium offers to install an app
    only outside incognito, which every other context here is."""
    context = await playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS
    )
    yield context
    await context.close()


class Pages:
    """Browser contexts for one test: each its own cookies and storage, like separate people
    (or devices); every page's console errors are kept, and screenshots are artifacts."""

    def __init__(self, browser: Browser, name: str) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []
        self.directory = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)

    async def open(self, url: str, **options: Any) -> Page:
        context = await self.browser.new_context(**options)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{page.url}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        await page.goto(url)
        return page

    async def screenshot(
        self, page: Page, name: str, *, full_page: bool = True, transparent: bool = False
    ) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full_page, omit_background=transparent)
        return path

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def pages(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    made = Pages(browser, request.node.name)
    shutil.rmtree(made.directory, ignore_errors=True)
    yield made
    await made.close()


async def sign_in(page: Page, token: str, expect_path: str, *, live: bool = True) -> None:
    """Sign in the way a person does with a token from their platform: paste it, press the
    button, land on the page for their role."""
    await page.get_by_label("The access token your platform gave you").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{expect_path}")
    if live:
        await page.locator("#status[data-state=live]").wait_for(timeout=10_000)
