"""The `hub` command as an operator meets it: clear one-line errors, exit codes, tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from tests.conftest import JWT_SECRET, Services


def hub(
    *args: str, env: dict[str, str], timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HUB_PORT", "eighty"),
        ("HUB_PORT", "70000"),
        ("HUB_DATABASE_URL", "mysql://localhost/hub"),
        ("HUB_REDIS_URL", "http://localhost"),
        ("HUB_PLATFORM_FEE_BPS", "-1"),
        ("HUB_JWT_SECRET", "short"),
        ("HUB_CURRENCIES", "naira"),
        ("HUB_IDEMPOTENCY_KEY_RETENTION_HOURS", "12"),
        ("HUB_EVENT_RETENTION_HOURS", "0"),
        ("HUB_EVENT_RETENTION_COUNT", "-1000"),
        ("HUB_METRICS_TOKEN", "short"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_an_invalid_setting_is_one_line_and_exit_2(
    tmp_path: Path, variable: str, value: str, command: str
) -> None:
    result = hub(command, env={"HUB_HOME": str(tmp_path), variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "postgres").exists(), "nothing may start on a bad setting"


def test_a_missing_secret_outside_the_embedded_default_is_exit_2(
    services: Services, tmp_path: Path
) -> None:
    result = hub(
        "token",
        "--sub",
        "u",
        "--role",
        "fan",
        env={
            "HUB_HOME": str(tmp_path),
            "HUB_DATABASE_URL": services.database_url,
            "HUB_REDIS_URL": services.redis_url,
        },
    )
    assert result.returncode == 2
    assert "HUB_JWT_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_token_prints_only_the_token(tmp_path: Path) -> None:
    result = hub(
        "token",
        "--sub",
        "ada",
        "--role",
        "creator",
        "--ttl",
        "120",
        env={"HUB_HOME": str(tmp_path), "HUB_JWT_SECRET": JWT_SECRET},
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    claims = jwt.decode(line, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ada" and claims["role"] == "creator"
    assert claims["exp"] - claims["iat"] == 120


def test_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = hub("token", "--sub", "a", "--role", "root", env={"HUB_JWT_SECRET": JWT_SECRET})
    assert result.returncode == 2


def test_a_busy_port_is_named(services: Services, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = hub(
            "serve",
            env={
                "HUB_HOME": str(tmp_path),
                "HUB_PORT": str(port),
                "HUB_DATABASE_URL": services.database_url,
                "HUB_REDIS_URL": services.redis_url,
                "HUB_JWT_SECRET": JWT_SECRET,
            },
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_is_repeatable(services: Services) -> None:
    env = {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
    }
    for _ in range(2):
        result = hub("migrate", env=env)
        assert result.returncode == 0, result.stderr


def test_status_says_what_is_unreachable_in_one_line(tmp_path: Path) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    result = hub(
        "status",
        env={
            "HUB_HOME": str(tmp_path),
            "HUB_JWT_SECRET": JWT_SECRET,
            "HUB_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/hub",
            "HUB_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        },
    )
    assert result.returncode == 1
    assert "cannot read the status" in result.stderr and "Traceback" not in result.stderr


# The production image: every package but the sandbox (the Dockerfile copies no `sandbox/`).
_WITHOUT_SANDBOX = """
import sys

class LeftOut:
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, LeftOut())
from hub.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_hub_sandbox_where_the_sandbox_is_left_out_says_so(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SANDBOX, "sandbox"],
        env={**clean, "HUB_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "development tool" in result.stderr and "Traceback" not in result.stderr


def test_apps_and_their_keys_from_the_shell(services: Services) -> None:
    """`hub apps`: an app made, a key shown once (alone on stdout) and listed by its prefix
    only, rotated with an overlap, revoked; mistakes are one line and exit 1."""
    import json
    import uuid

    env = {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
    }
    app_id = f"cli-{uuid.uuid4().hex[:8]}"
    made = hub("apps", "create", app_id, "--name", "CLI platform", env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["id"] == app_id
    assert app_id in hub("apps", "list", env=env).stdout
    again = hub("apps", "create", app_id, env=env)
    assert (
        again.returncode == 1 and again.stderr.strip() == f"hub: there is already an app {app_id}"
    )

    created = hub(
        "apps", "keys", app_id, "create", "--scope", "publish", "--label", "backend", env=env
    )
    assert created.returncode == 0, created.stderr
    [secret] = created.stdout.splitlines()
    record = json.loads(created.stderr)
    assert secret.startswith(record["prefix"] + "_") and record["scopes"] == ["publish"]
    listed = [
        json.loads(line)
        for line in hub("apps", "keys", app_id, "list", env=env).stdout.splitlines()
    ]
    assert [key["prefix"] for key in listed] == [record["prefix"]]
    assert secret not in hub("apps", "keys", app_id, "list", env=env).stdout

    rotated = hub("apps", "keys", app_id, "rotate", str(record["id"]), "--overlap", "60", env=env)
    assert rotated.returncode == 0, rotated.stderr
    successor = json.loads(rotated.stderr)
    assert successor["scopes"] == ["publish"] and successor["label"] == "backend"
    keys = {
        key["id"]: key
        for key in map(json.loads, hub("apps", "keys", app_id, "list", env=env).stdout.splitlines())
    }
    assert keys[record["id"]]["rotated_to"] == successor["id"]
    assert keys[record["id"]]["expires_at"] is not None
    twice = hub("apps", "keys", app_id, "rotate", str(record["id"]), env=env)
    assert twice.returncode == 1 and "already rotated" in twice.stderr

    revoked = hub("apps", "keys", app_id, "revoke", str(successor["id"]), env=env)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"] is not None
    unknown = hub("apps", "keys", "no-such-app", "list", env=env)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "hub: no app no-such-app"
    missing = hub("apps", "keys", app_id, "revoke", env=env)
    assert missing.returncode == 1 and "needs a KEY_ID" in missing.stderr


def test_an_apps_own_tokens_from_the_shell(services: Services) -> None:
    """`hub apps tokens APP --new-secret` prints the app's HS256 secret once; `hub token --app`
    signs a development token with it and the app's issuer."""
    import json
    import uuid

    env = {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
    }
    app_id = f"cli-{uuid.uuid4().hex[:8]}"
    assert hub("apps", "create", app_id, env=env).returncode == 0
    issuer = f"https://{app_id}.example.com/"
    configured = hub("apps", "tokens", app_id, "--issuer", issuer, "--new-secret", env=env)
    assert configured.returncode == 0, configured.stderr
    [secret] = configured.stdout.splitlines()
    assert json.loads(configured.stderr)["algorithm"] == "HS256"
    made = hub("token", "--sub", "ada", "--role", "fan", "--app", app_id, env=env)
    assert made.returncode == 0, made.stderr
    claims = jwt.decode(made.stdout.strip(), secret, algorithms=["HS256"], issuer=issuer)
    assert claims["sub"] == "ada"
    neither = hub("apps", "tokens", app_id, "--issuer", issuer, env=env)
    assert neither.returncode == 2  # argparse: --new-secret or --jwks-url
    none = hub("token", "--sub", "a", "--role", "fan", "--app", "no-such-app", env=env)
    assert none.returncode == 1 and "no tokens of its own" in none.stderr


def test_what_an_app_sets_for_itself_from_the_shell(services: Services) -> None:
    """`hub apps set APP`: its fee, currencies (among HUB_CURRENCIES), server API limit and
    origins, each given back to the deployment with `default`; `hub apps list` shows them;
    what cannot be is one line and exit 1."""
    import json
    import uuid

    env = {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
        "HUB_CURRENCIES": "NGN,USD",
    }
    app_id = f"cli-{uuid.uuid4().hex[:8]}"
    assert hub("apps", "create", app_id, env=env).returncode == 0
    changed = hub(
        "apps", "set", app_id, "--fee-bps", "300", "--currencies", "ngn",
        "--rate-limit", "20/second", "--origins", "https://app.example.com/", env=env,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "app_id": app_id,
        "fee_bps": 300,
        "currencies": ["NGN"],
        "rate_limit_server": "20/second",
        "allowed_origins": ["https://app.example.com"],
    }
    back = hub("apps", "set", app_id, "--fee-bps", "default", "--origins", "default", env=env)
    assert back.returncode == 0, back.stderr
    [listed] = [
        record
        for record in map(json.loads, hub("apps", "list", env=env).stdout.splitlines())
        if record["id"] == app_id
    ]
    assert (listed["fee_bps"], listed["currencies"], listed["allowed_origins"]) == (
        None,
        ["NGN"],
        [],
    )
    for wrong, said in (
        (["--currencies", "EUR"], "--currencies: EUR not among HUB_CURRENCIES (NGN, USD)"),
        (["--rate-limit", "often"], "--rate-limit: 'often' is not a rate limit such as 50/second"),
        (["--fee-bps", "5001"], "a fee is 0 to 5000 basis points"),
        (["--origins", "ftp://x.example"], "'ftp://x.example' is not an origin"),
        ([], "needs --fee-bps, --currencies, --rate-limit or --origins"),
    ):
        refused = hub("apps", "set", app_id, *wrong, env=env)
        assert refused.returncode == 1 and said in refused.stderr, (wrong, refused.stderr)
        assert "Traceback" not in refused.stderr
    default = hub("apps", "set", "default", "--fee-bps", "100", env=env)
    assert default.returncode == 1 and "the deployment's" in default.stderr


def test_apps_providers_keep_an_apps_own_keys_sealed(services: Services) -> None:
    """`hub apps providers`: the secrets come on stdin (not the command line), are stored
    sealed with HUB_SECRETS_KEY, never printed back; the webhook URL to give the provider is."""
    import json
    import uuid

    from tests.conftest import SECRETS_KEY

    env = {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
        "HUB_PUBLIC_URL": "https://hub.example.com",
    }
    app_id = f"cli-{uuid.uuid4().hex[:8]}"
    assert hub("apps", "create", app_id, env=env).returncode == 0
    keyless = hub("apps", "providers", app_id, "set", "paystack", env=env)
    assert keyless.returncode == 1 and "HUB_SECRETS_KEY" in keyless.stderr
    new_key = hub("apps", "secrets-key", env=env)
    assert new_key.returncode == 0 and len(new_key.stdout.strip()) == 44
    env["HUB_SECRETS_KEY"] = SECRETS_KEY
    made = hub(
        "apps", "providers", app_id, "set", "stripe", env=env, stdin="sk_live_abc\nwhsec_def\n"
    )
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    assert shown["webhook_url"] == f"https://hub.example.com/apps/{app_id}/webhooks/stripe"
    assert "sk_live_abc" not in made.stdout + made.stderr
    listed = hub("apps", "providers", app_id, "list", env=env)
    assert [json.loads(line)["provider"] for line in listed.stdout.splitlines()] == ["stripe"]
    assert "sk_live_abc" not in listed.stdout and "whsec_def" not in listed.stdout
    short = hub("apps", "providers", app_id, "set", "stripe", env=env, stdin="sk_only\n")
    assert short.returncode == 1 and "webhook_secret" in short.stderr
    gone = hub("apps", "providers", app_id, "remove", "stripe", env=env)
    assert gone.returncode == 0, gone.stderr
    again = hub("apps", "providers", app_id, "remove", "stripe", env=env)
    assert again.returncode == 1 and "has no stripe account" in again.stderr
