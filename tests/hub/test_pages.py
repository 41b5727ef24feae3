"""The pages over plain HTTP: security headers, no inline code, demo sign-in only under
`hub dev`, the service worker's version, and where a provider's checkout sends the payer."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.routes.pages import PAGES, STATIC, static_version
from tests.conftest import Services, hub_server, make_settings
from tests.money import start_topup

HTML = sorted(STATIC.glob("*.html"))


@pytest.mark.parametrize("page", sorted(PAGES))
async def test_every_page_has_its_security_headers(http: httpx.AsyncClient, page: str) -> None:
    answer = await http.get(f"/app/{page}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


async def test_static_files_and_the_socket_client_come_from_the_hub(
    http: httpx.AsyncClient,
) -> None:
    script = await http.get("/app/static/js/common.js")
    assert script.status_code == 200
    assert "content-security-policy" in script.headers
    assert 'from "/app/vendor/socket.io.esm.min.js"' in script.text
    client = await http.get("/app/vendor/socket.io.esm.min.js")
    assert client.status_code == 200 and "javascript" in client.headers["content-type"]


@pytest.mark.parametrize("path", [p.name for p in HTML])
def test_no_page_has_inline_script_style_or_handlers(path: str) -> None:
    """The CSP forbids inline code; a page that had some would break, not run it."""
    html = (STATIC / path).read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"\sstyle\s*=", html)
    assert "<style" not in html
    assert "http://" not in html and "https://" not in html  # nothing from another origin


async def test_pages_redirects_and_unknown_pages(http: httpx.AsyncClient) -> None:
    root = await http.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/app/"
    unknown = await http.get("/app/nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found"


async def test_demo_sign_in_is_off_unless_hub_dev_turns_it_on(http: httpx.AsyncClient) -> None:
    assert (await http.get("/app/dev/users")).status_code == 404
    token = await http.post("/app/dev/token", json={"user_id": "demo-creator"})
    assert token.status_code == 404
    config = (await http.get("/app/config.json")).json()
    assert config["dev_signin"] is False
    assert config["currencies"] == ["NGN", "USD"]
    assert {"paystack", "stripe", "sandbox"} <= set(config["providers"])


async def test_the_service_worker_is_versioned_by_the_static_files(
    http: httpx.AsyncClient,
) -> None:
    worker = await http.get("/app/sw.js")
    assert worker.status_code == 200
    assert worker.headers["service-worker-allowed"] == "/app/"
    assert "__VERSION__" not in worker.text
    assert re.search(r'const CACHE = "hub-shell-[0-9a-f]{16}";', worker.text)
    manifest = await http.get("/app/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == "/app/"


async def test_the_checkout_return_leads_back_to_the_fan_page(
    http: httpx.AsyncClient, sandbox: httpx.AsyncClient, uid: Any
) -> None:
    fan = uid("fan")
    started = await start_topup(http, fan, 5_000)
    answer = await http.get("/checkout/return", params={"reference": started["reference"]})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/app/fan?topup={started['id']}"
    unknown = await http.get("/checkout/return", params={"reference": "pay_nope<x>"})
    assert unknown.status_code == 303 and unknown.headers["location"] == "/app/fan"


def test_the_service_worker_version_changes_with_any_static_file(tmp_path: Path) -> None:
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    before = static_version(copy)
    assert static_version(copy) == before
    script = copy / "js" / "common.js"
    script.write_text(script.read_text() + "\n// a release\n")
    assert static_version(copy) != before
    (copy / "sw.js").write_text("// the worker itself does not count: it carries the version")
    assert static_version(copy) != before


async def test_api_answers_are_never_sniffed(http: httpx.AsyncClient) -> None:
    answer = await http.get("/healthz")
    assert answer.headers["x-content-type-options"] == "nosniff"
    page = await http.get("/app/")
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]
    assert page.headers["cache-control"] == "no-cache"


async def test_demo_sign_in_only_answers_this_machine(services: Services) -> None:
    """With HUB_DEV_SIGNIN on, a browser on this machine gets demo tokens; a request that came
    through a balancer (X-Forwarded-For from a trusted proxy) gets nothing."""
    server = hub_server(make_settings(services, dev_signin=True))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            local = await client.get("/app/dev/users")
            assert local.status_code == 200
            assert "demo-admin" in {user["id"] for user in local.json()["data"]}
            assert (await client.get("/app/config.json")).json()["dev_signin"] is True
            remote = {"X-Forwarded-For": "203.0.113.9"}
            assert (await client.get("/app/dev/users", headers=remote)).status_code == 404
            token = await client.post(
                "/app/dev/token", json={"user_id": "demo-admin"}, headers=remote
            )
            assert token.status_code == 404
            config = await client.get("/app/config.json", headers=remote)
            assert config.json()["dev_signin"] is False
    finally:
        await server.stop()
