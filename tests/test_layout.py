"""Architecture checks: the one direction of imports, settings read in one place, and a
docker-compose file with the production topology."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "ledger": {"hub", "realtime", "jobs", "sandbox"},
    "realtime": {"hub", "jobs", "sandbox"},
    "jobs": {"hub", "sandbox"},
    # the payment providers' adapters and the signatures of webhooks, both ways
    "providers": {"hub", "realtime", "jobs", "sandbox"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_product_runs_without_the_sandbox() -> None:
    """The sandbox provider is a development tool, left out of the production image: only the
    command that serves it imports it (and says so where it is missing)."""
    importers = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "hub").rglob("*.py")
        if "sandbox" in imported_packages(path)
    }
    assert importers == {"hub/cli.py"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY hub " in dockerfile and "sandbox" not in dockerfile


def test_only_the_settings_read_the_environment() -> None:
    # hub/dev.py hands its environment down to the processes it starts; it reads no setting.
    allowed = {"hub/settings.py", "hub/dev.py"}
    pattern = re.compile(r"os\.environ|os\.getenv|getenv\(")
    readers = {
        str(path.relative_to(ROOT))
        for package in ("hub", "realtime", "ledger", "jobs", "providers")
        for path in (ROOT / package).rglob("*.py")
        if pattern.search(path.read_text())
    }
    assert readers <= allowed, readers - allowed


def test_compose_has_the_production_topology() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "hub1", "hub2", "worker", "lb", "migrate"} <= services.keys()
    for name in ("hub1", "hub2"):
        assert services[name]["command"] == ["hub", "serve"]
    assert services["worker"]["command"] == ["hub", "worker"]
    known = {f"HUB_{field.upper()}" for field in Settings.model_fields}
    for name in ("hub1", "hub2", "worker", "migrate"):
        assert set(services[name]["environment"]) <= known
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server hub1:8000" in nginx and "server hub2:8000" in nginx
    assert "Upgrade $http_upgrade" in nginx
    # /metrics is refused at the balancer (tests/hub/test_metrics.py runs nginx with it).
    assert re.search(r"location \^~ /metrics \{\s*deny all;\s*\}", nginx)
    # The nodes publish no port: the balancer is the only way in from outside.
    assert all("ports" not in services[name] for name in ("hub1", "hub2"))
    assert (ROOT / services["hub1"]["build"] / "Dockerfile").exists()


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    plugin = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    if docker and plugin and plugin.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_parses() -> None:
    command = compose_command()
    if command is None:
        # .ci/run installs Debian's docker-compose, so CI runs this; a laptop may not have it.
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"HUB_JWT_SECRET": "x" * 32, "PATH": "/usr/local/bin:/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_no_route_authenticates_by_itself() -> None:
    """Who may call a route is the route table's to say (hub.guard), not a preamble in it."""
    preambles = {
        path.name
        for path in (ROOT / "hub" / "routes").glob("*.py")
        if re.search(r"hub\.authenticate\(|require_role\(|keys\.verify\(", path.read_text())
    }
    assert preambles == set(), preambles
