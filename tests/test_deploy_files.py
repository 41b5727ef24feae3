"""The monitoring files in deploy/: Prometheus alert rules and scrape config, and the Grafana
dashboard. They must parse, name only series Hub exports, and carry the alerts operators were
promised. With `promtool` on PATH (Debian's `prometheus` package) the rules are also checked
and unit-tested by Prometheus itself; without it those tests skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import hub.metrics  # noqa: F401  (registers Hub's series in the default registry)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus-alerts.yml"
PROMETHEUS = DEPLOY / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# Series that Prometheus writes itself for every scrape target, not exported by Hub.
PROMETHEUS_SERIES = frozenset({"up"})

# Alert rules written against a series Hub does not export yet, by alert name → that series.
# Their series are left out of the "exported" check until the series lands; an entry whose
# series is exported by now fails test_pending_series_are_still_pending, so it gets removed.
# (hub_reconciliation_ok, once pending for HubReconciliationFailed, is exported now.)
PENDING_SERIES: dict[str, str] = {}

# The alerts the operations issue asks for, each with the series it must read.
REQUIRED_ALERTS = {
    "HubHighErrorRate": "hub_http_request_duration_seconds_count",
    "HubHighLatency": "hub_http_request_duration_seconds_bucket",
    "HubEventBacklog": "hub_events_unpublished",
    "HubReconciliationFailed": "hub_reconciliation_ok",
    "HubEventBusNotSubscribed": "hub_event_bus_subscribed",
    "HubJobsFailing": "hub_jobs_failed",
    "HubQueueDepthHigh": "hub_queue_depth",
    "HubReconciliationStale": "hub_reconciliation_last_finished_timestamp_seconds",
    "HubPaymentsUnconfirmed": "hub_payments_unconfirmed",
    "HubOutboxStuck": "hub_outbox_oldest_seconds",
}

# Dashboard panels by title, each with the series its queries must read.
REQUIRED_PANELS = {
    "Request rate by route": {"hub_http_request_duration_seconds_count"},
    "Error rate by route (5xx share)": {"hub_http_request_duration_seconds_count"},
    "Latency p50 / p95 / p99": {"hub_http_request_duration_seconds_bucket"},
    "Postings by kind": {"hub_postings_total"},
    "Webhook outcomes by provider": {"hub_webhooks_total"},
    "Connected sockets": {"hub_sockets_connected"},
    "Event delivery lag": {"hub_event_delivery_lag_seconds_bucket"},
    "Unpublished event backlog": {"hub_events_unpublished"},
    "Queue depth and failed jobs": {"hub_queue_depth", "hub_jobs_failed"},
    "Rate-limit refusals by scope": {"hub_rate_limited_total"},
    "Fee cache hit ratio": {"hub_fee_cache_hits_total", "hub_fee_cache_misses_total"},
    "DB pool in use": {"hub_db_pool_in_use"},
    "Event bus subscribed per instance": {"hub_event_bus_subscribed"},
    "Since the last reconciliation": {"hub_reconciliation_last_finished_timestamp_seconds"},
    "Unconfirmed payments": {"hub_payments_unconfirmed"},
    "Outbox: oldest waiting follow-up": {"hub_outbox_oldest_seconds"},
}

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


def exported_series() -> set[str]:
    """The sample names /metrics carries for Hub's own metric families. `_created` samples are
    left out: the multiprocess collector (HUB_WORKERS > 1) does not write them."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("hub_"):
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    aggregations, keywords, label names, label values, durations or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end() :]):
            continue
        names.add(name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in model["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return [panel for panel in found if panel.get("type") != "row"]


def panel_exprs(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel.get("targets", []) if target.get("expr")]


def variable_exprs(model: dict[str, Any]) -> list[str]:
    """The series expressions of the dashboard's query variables (label_values(expr, label))."""
    exprs = []
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
        exprs.append(match.group(1) if match else text)
    return exprs


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'sum by (route) (rate(hub_a_total{status=~"5..", job="hub"}[$__rate_interval])) / '
        "max(hub_b offset 15m) > 0.005 and on() histogram_quantile(0.9, hub_c_bucket) "
        "unless absent(up{job='x'})"
    )
    assert metric_names(expr) == {"hub_a_total", "hub_b", "hub_c_bucket", "up"}


def test_hub_exports_the_series_the_files_are_written_against() -> None:
    series = exported_series()
    assert {"hub_http_request_duration_seconds_bucket", "hub_postings_total"} <= series
    assert "hub_postings" not in series  # a counter is scraped with its _total suffix


def test_alert_rules_are_a_rule_file() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert isinstance(document["groups"], list) and document["groups"]
    for group in document["groups"]:
        assert group["name"] and group["rules"]
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{rule['alert'].lower()}"


def test_the_required_alerts_are_there() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    missing = REQUIRED_ALERTS.keys() - rules.keys()
    assert not missing, missing
    for name, series in REQUIRED_ALERTS.items():
        assert series in metric_names(rules[name]["expr"]), name

    errors = rules["HubHighErrorRate"]
    assert '"5.."' in errors["expr"] and "> 0.005" in errors["expr"]
    assert errors["for"] == "5m"
    latency = rules["HubHighLatency"]
    assert "histogram_quantile(0.95" in latency["expr"] and "> 0.5" in latency["expr"]
    assert latency["for"] == "5m"
    assert "> 1000" in rules["HubEventBacklog"]["expr"]
    assert "== 0" in rules["HubReconciliationFailed"]["expr"]
    assert rules["HubEventBusNotSubscribed"]["for"] == "1m"
    assert "> 7200" in rules["HubReconciliationStale"]["expr"]
    assert "time()" in rules["HubReconciliationStale"]["expr"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_rules_read_only_exported_series(rule: dict[str, Any]) -> None:
    pending = {PENDING_SERIES[rule["alert"]]} if rule["alert"] in PENDING_SERIES else set()
    unknown = metric_names(rule["expr"]) - exported_series() - PROMETHEUS_SERIES - pending
    assert not unknown, f"{rule['alert']} reads series Hub does not export: {unknown}"


def test_pending_series_are_still_pending() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for alert, series in PENDING_SERIES.items():
        assert alert in rules and series in metric_names(rules[alert]["expr"])
        assert series not in exported_series(), f"{series} is exported now: unmark {alert}"


def test_dashboard_is_an_importable_model() -> None:
    model = dashboard()
    assert model["schemaVersion"] >= 36
    assert model["title"] and model["uid"]
    inputs = {item["name"]: item for item in model["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    titles = [panel["title"] for panel in panels(model)]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in panels(model):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"] == datasource, panel["title"]
        assert panel_exprs(panel), f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == datasource and target["refId"]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == datasource


def test_dashboard_has_the_panels() -> None:
    by_title = {panel["title"]: panel for panel in panels(dashboard())}
    missing = REQUIRED_PANELS.keys() - by_title.keys()
    assert not missing, missing
    for title, series in REQUIRED_PANELS.items():
        used = set().union(*(metric_names(expr) for expr in panel_exprs(by_title[title])))
        assert series <= used, f"{title} does not read {series - used}"
    latency = " ".join(panel_exprs(by_title["Latency p50 / p95 / p99"]))
    assert all(f"histogram_quantile({q}," in latency for q in ("0.5", "0.95", "0.99"))
    lag = " ".join(panel_exprs(by_title["Event delivery lag"]))
    assert "histogram_quantile(0.95," in lag
    assert "by (instance)" in panel_exprs(by_title["Event bus subscribed per instance"])[0]


def test_dashboard_reads_only_exported_series() -> None:
    model = dashboard()
    exprs = [expr for panel in panels(model) for expr in panel_exprs(panel)]
    exprs += variable_exprs(model)
    used = set().union(*(metric_names(expr) for expr in exprs))
    unknown = used - exported_series() - PROMETHEUS_SERIES - set(PENDING_SERIES.values())
    assert not unknown, f"the dashboard reads series Hub does not export: {unknown}"


def compose_hub_nodes() -> set[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    nodes = set()
    for name, service in compose["services"].items():
        if service.get("command") == ["hub", "serve"]:
            port = service.get("environment", {}).get("HUB_PORT", "8000")
            nodes.add(f"{name}:{port}")
    return nodes


def test_prometheus_scrapes_every_node_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert [(PROMETHEUS.parent / path).resolve() for path in config["rule_files"]] == [
        ALERTS.resolve()
    ]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "hub"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    assert targets == compose_hub_nodes() == {"hub1:8000", "hub2:8000"}


def test_operations_doc_has_a_runbook_per_alert_and_every_series() -> None:
    text = OPERATIONS.read_text()
    headings = set(re.findall(r"^#{2,4} (\S+)\s*$", text, flags=re.MULTILINE))
    missing = {rule["alert"] for rule in alert_rules()} - headings
    assert not missing, f"docs/operations.md has no runbook heading for {missing}"
    families = {family.name for family in REGISTRY.collect() if family.name.startswith("hub_")}
    undocumented = {name for name in families if f"`{name}" not in text}
    assert not undocumented, f"docs/operations.md does not describe {undocumented}"


# --- promtool: Prometheus's own checks, where it is installed -----------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)"
)


def promtool(*args: str, cwd: Path) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    promtool("check", "config", PROMETHEUS.name, cwd=DEPLOY)  # checks its rule files too


@needs_promtool
def test_promtool_accepts_the_scrape_config_with_the_metrics_token(tmp_path: Path) -> None:
    commented = (
        "    # authorization:\n    #   credentials_file: /etc/prometheus/hub-metrics-token\n"
    )
    text = PROMETHEUS.read_text()
    assert commented in text
    token = tmp_path / "hub-metrics-token"
    token.write_text("metrics-" + "t" * 32)
    enabled = text.replace(commented, f"    authorization:\n      credentials_file: {token}\n")
    (tmp_path / PROMETHEUS.name).write_text(enabled)
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    config = yaml.safe_load(enabled)
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "hub"]
    assert job["authorization"] == {"credentials_file": str(token)}
    promtool("check", "config", PROMETHEUS.name, cwd=tmp_path)


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    model = dashboard()
    exprs = [expr for panel in panels(model) for expr in panel_exprs(panel)]
    exprs += variable_exprs(model)
    rules = [
        {
            "record": f"dashboard:query_{n}",
            "expr": expr.replace("$__rate_interval", "1m").replace("$instance", ".*"),
        }
        for n, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool("check", "rules", path.name, cwd=tmp_path)


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    """One input series of a promtool unit test, on node hub1 unless `instance` says."""
    labels = {"job": "hub", "instance": "hub1:8000", **labels}
    matchers = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def fires(minute: int, alert: str, severity: str | None = None, **labels: str) -> dict[str, Any]:
    """At `minute`, `alert` fires once with these labels (or, without a severity, not at all)."""
    expected = [{"exp_labels": {"severity": severity, **labels}}] if severity else []
    return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": expected}


HTTP = "hub_http_request_duration_seconds"
RECONCILED = "hub_reconciliation_last_finished_timestamp_seconds"
TIPS = {"route": "/api/v1/tips", "method": "POST"}
PROMTOOL_TESTS = {
    "rule_files": ["alerts.yml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                # 1 % of tip requests fail with 503; the many /readyz 503s do not count.
                series(f"{HTTP}_count", "0+990x30", **TIPS, status="201"),
                series(f"{HTTP}_count", "0+10x30", **TIPS, status="503"),
                series(f"{HTTP}_count", "0+5000x30", route="/readyz", method="GET", status="503"),
                # Every request takes between 0.5 s and 1 s.
                series(f"{HTTP}_bucket", "0x30", **TIPS, status="201", le="0.5"),
                series(f"{HTTP}_bucket", "0+100x30", **TIPS, status="201", le="1"),
                series(f"{HTTP}_bucket", "0+100x30", **TIPS, status="201", le="+Inf"),
                # Both nodes report the cluster-wide backlog; past 1,000 from minute 10.
                series("hub_events_unpublished", "0x9 5000x20"),
                series("hub_events_unpublished", "0x9 5000x20", instance="hub2:8000"),
                # The reconciliation finished at minute 10 fails.
                series("hub_reconciliation_ok", "1x9 0x20"),
                # Node 2 loses the event bus at minute 10.
                series("hub_event_bus_subscribed", "1x30"),
                series("hub_event_bus_subscribed", "1x9 0x20", instance="hub2:8000"),
                # A job fails for good at minute 20.
                series("hub_jobs_failed", "3x19 4x10"),
                # A payment the provider does not confirm at minute 20, seen by both nodes.
                series("hub_payments_unconfirmed", "0x19 1x20"),
                series("hub_payments_unconfirmed", "0x19 1x20", instance="hub2:8000"),
                # No worker from minute 10: the oldest follow-up ages a minute a minute.
                series("hub_outbox_oldest_seconds", "0x9 0+60x20"),
                series("hub_outbox_oldest_seconds", "0x9 0+60x20", instance="hub2:8000"),
                series("up", "1x30"),
            ],
            "alert_rule_test": [
                fires(4, "HubHighErrorRate"),
                fires(10, "HubHighErrorRate", "critical"),
                fires(10, "HubHighLatency", "warning"),
                fires(9, "HubEventBacklog"),
                fires(13, "HubEventBacklog", "critical"),
                fires(9, "HubReconciliationFailed"),
                fires(12, "HubReconciliationFailed", "critical"),
                fires(9, "HubEventBusNotSubscribed"),
                fires(12, "HubEventBusNotSubscribed", "critical", job="hub", instance="hub2:8000"),
                fires(19, "HubJobsFailing"),
                fires(22, "HubJobsFailing", "warning"),
                fires(22, "HubNodeDown"),
                fires(19, "HubPaymentsUnconfirmed"),
                fires(22, "HubPaymentsUnconfirmed", "critical"),
                fires(36, "HubPaymentsUnconfirmed"),  # none new in the last 15 minutes
                fires(15, "HubOutboxStuck"),  # 300 s old at minute 15: not past it
                fires(17, "HubOutboxStuck"),  # past 300 s since minute 16: pending
                fires(21, "HubOutboxStuck", "warning"),
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                # Runs finish at 0:00 and 1:00 (promtool's clock starts at Unix time 0), then
                # no more. Both nodes report the same time.
                series(RECONCILED, "0x59 3600x200"),
                series(RECONCILED, "0x59 3600x200", instance="hub2:8000"),
                series("hub_reconciliation_ok", "1x260"),
                series("up", "1x260"),
            ],
            "alert_rule_test": [
                fires(179, "HubReconciliationStale"),  # the 1:00 run is 1 h 59 min old
                fires(183, "HubReconciliationStale"),  # over 2 h old since 3:01: pending 5 min
                fires(187, "HubReconciliationStale", "warning"),
                fires(250, "HubReconciliationStale", "warning"),
                fires(250, "HubReconciliationMissing"),  # that one is for "never ran"
            ],
        },
    ],
}


@needs_promtool
def test_the_alerts_fire_when_they_should(tmp_path: Path) -> None:
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:  # promtool compares annotations too: test on labels
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(document))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(PROMTOOL_TESTS))
    promtool("test", "rules", "tests.yml", cwd=tmp_path)
