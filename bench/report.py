"""Writes the measured tables of docs/benchmarks.md from bench/results/*.json: medians of the
runs with min to max, and every Hub figure's ratio to its peer's. Only the part between the
markers is replaced; the prose around it is kept.

    python -m bench.report
"""

from __future__ import annotations

import json
from typing import Any

from bench.common import RESULTS, ROOT

DOC = ROOT / "docs" / "benchmarks.md"
START = "<!-- bench:results:start (written by `python -m bench.report`; edit outside) -->"
END = "<!-- bench:results:end -->"
DASH, TIMES = "\u2013", "\u00d7"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def dig(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return DASH
    if abs(value) >= 100 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def cell(stat: dict[str, Any] | None, digits: int = 1, scale: float = 1.0) -> str:
    """median (min to max over the runs)."""
    if not stat or stat.get("median") is None:
        return DASH
    med, lo, hi = (stat[k] * scale for k in ("median", "min", "max"))
    if stat.get("n", 1) > 1 and (lo != hi):
        return f"{num(med, digits)} ({num(lo, digits)}{DASH}{num(hi, digits)})"
    return num(med, digits)


def median(stat: dict[str, Any] | None) -> float | None:
    return stat.get("median") if stat else None


def ratio(hub: dict[str, Any] | None, peer: dict[str, Any] | None) -> str:
    a, b = median(hub), median(peer)
    if a is None or b is None or b == 0:
        return DASH
    return f"{a / b:.2f}{TIMES}"


def runs_of(data: dict[str, Any], kind: str | None = None) -> int:
    runs = data.get("runs")
    if kind is not None and isinstance(runs, dict):
        runs = runs.get(kind)
    return len(runs) if isinstance(runs, list) else 0


def capacity(lines: list[str]) -> None:
    data = load("capacity")
    if not data:
        lines.append("*Capacity: not run.*\n")
        return
    s = data["summary"]
    lines += [
        f"### 1. Capacity (runs: Hub {runs_of(data, 'hub')}, Node {runs_of(data, 'node')}; "
        f"{data['date']})",
        "",
        "| sockets | figure | Hub | Node peer | Hub / Node |",
        "|---|---|---|---|---|",
    ]
    for level in map(str, data["levels"]):
        hub, node = dig(s, "hub", level) or {}, dig(s, "node", level) or {}
        for label, key, digits in (
            ("connected", "connected", 0),
            ("time to connect all (s)", "seconds_to_connect_all", 1),
            ("RSS per connection (KiB)", "rss_per_connection_kib", 1),
            ("CPU per connect (ms)", "cpu_per_connect_ms", 2),
            ("load client CPU share while connecting", "client_cpu_share_during_connect", 2),
            ("longest GC pause since start (ms)", "gc_pause_max_ms", 1),
        ):
            lines.append(
                f"| {level} | {label} | {cell(hub.get(key), digits)} | "
                f"{cell(node.get(key), digits)} | {ratio(hub.get(key), node.get(key))} |"
            )
    lines.append("")


def fanout(lines: list[str]) -> None:
    data = load("fanout")
    if not data:
        lines.append("*Fan-out and broadcast: not run.*\n")
        return
    s = data["summary"]
    lines += [
        f"### 2. Fan-out to {data['users']:,} connected users, {data['seconds']:.0f} s per rate "
        f"(runs: Hub {runs_of(data, 'hub')}, Node {runs_of(data, 'node')}; {data['date']})",
        "",
        "| rate/s | figure | Hub | Node peer | Hub / Node |",
        "|---|---|---|---|---|",
    ]
    for rate in map(str, data["rates"]):
        hub, node = dig(s, "hub", rate) or {}, dig(s, "node", rate) or {}
        for label, key, digits in (
            ("delivered / sent", "delivered_share", 4),
            ("duplicates", "duplicates", 0),
            ("p50 publish→client (ms)", "p50_ms", 1),
            ("p95 (ms)", "p95_ms", 1),
            ("p99 (ms)", "p99_ms", 1),
            ("max (ms)", "max_ms", 0),
            ("server CPU per 1,000 events (ms)", "server_cpu_per_1000_events_ms", 0),
            ("… less idle CPU (ms)", "server_cpu_per_1000_events_net_ms", 0),
            ("server CPU share", "server_cpu_share", 2),
            ("load client CPU share", "client_cpu_share", 2),
        ):
            lines.append(
                f"| {rate} | {label} | {cell(hub.get(key), digits)} | "
                f"{cell(node.get(key), digits)} | {ratio(hub.get(key), node.get(key))} |"
            )
    hub_idle, node_idle = (
        dig(s, "hub", "idle_server_cpu_share"),
        dig(s, "node", "idle_server_cpu_share"),
    )
    hub_gc = dig(s, "hub", "gc_pause_max_ms")
    lines += [
        f"| idle | server CPU share with the sockets and no events | {cell(hub_idle, 2)} | "
        f"{cell(node_idle, 2)} | {ratio(hub_idle, node_idle)} |",
        f"| all | longest GC pause since start, connects included (ms) | {cell(hub_gc, 1)} | "
        f"{DASH} | {DASH} |",
        "",
        f"### 3. Broadcast: one event to all {data['users']:,}",
        "",
        "| figure | Hub | Node peer | Hub / Node |",
        "|---|---|---|---|",
    ]
    hub_b, node_b = dig(s, "hub", "broadcast") or {}, dig(s, "node", "broadcast") or {}

    def row(label: str, key: str, digits: int = 1) -> str:
        hub, node = hub_b.get(key), node_b.get(key)
        return f"| {label} | {cell(hub, digits)} | {cell(node, digits)} | {ratio(hub, node)} |"

    lines += [
        row(
            "one event to all, last delivery: Hub one channel event (`public.tip` to every "
            "viewer of one creator), Node one `io.emit` (ms)",
            "one_emit_last_ms",
        ),
        row("… p50 (ms)", "one_emit_p50_ms"),
        row("… delivered / clients", "one_emit_delivered_share", 4),
        row("… server CPU (ms)", "one_emit_server_cpu_ms", 0),
        row(f"{data['users']:,} per-user events at once, last delivery (ms)", "targeted_last_ms"),
        row("… p50 (ms)", "targeted_p50_ms"),
        row("… server CPU (ms)", "targeted_server_cpu_ms", 0),
        "",
    ]


def ledger(lines: list[str]) -> None:
    pg, tips, hooks = load("pgpeer"), load("tips"), load("webhooks")
    card = load("webhooks-card-tips")
    spread = dig(pg, "summary", "spread_fee", "tps")
    hot = dig(pg, "summary", "hot_fee", "tps")
    lines += [
        "### 4. Tips end to end, and the PostgreSQL peer",
        "",
    ]
    if pg:
        lines += [
            f"pgbench ({pg['clients']} clients, {pg['seconds']} s, fsync on, runs: "
            f"{runs_of(pg, 'spread_fee')}; {pg['date']}): **{cell(spread, 0)}** postings/s with "
            f"the fee spread over 64 sub-accounts, **{cell(hot, 0)}** with one hot fee account.",
        ]
        spread_many = dig(pg, "summary", "spread_fee_batched", "tps")
        hot_many = dig(pg, "summary", "hot_fee_batched", "tps")
        if spread_many is not None:
            lines.append(
                f"The same postings 16 to a transaction: **{cell(spread_many, 0)}** postings/s "
                f"spread, **{cell(hot_many, 0)}** hot (each batch posted set-based in one "
                "statement, as Hub's group commit posts it)."
            )
        lines.append("")
    if tips:
        s = tips["summary"]
        lines += [
            f"Hub: {tips['fans']} fans, {tips['workers']} requests in flight at saturation, "
            f"{tips['seconds']:.0f} s per phase (runs: {runs_of(tips, 'many_creators')}; "
            f"{tips['date']}).",
            "",
            "| figure | (a) many creators | (b) one creator | (c) pay-per-view (per purchase) |",
            "|---|---|---|---|",
        ]
        a, b, c = s.get("many_creators", {}), s.get("one_creator", {}), s.get("purchases", {})
        rows = (
            ("tips/s at saturation", "throughput_per_s", 0),
            ("HTTP p50 at saturation (ms)", "saturation_p50_ms", 0),
            ("HTTP p99 at saturation (ms)", "saturation_p99_ms", 0),
            ("hub CPU per tip (ms)", "hub_cpu_per_tip_ms", 1),
            ("hub CPU share at saturation", "hub_cpu_share_at_saturation", 2),
            ("PostgreSQL CPU share at saturation", "postgres_cpu_share_at_saturation", 2),
            ("PostgreSQL transactions per 100 tips", "pg_transactions_per_100_tips", 0),
            ("half load: rate (tips/s)", "half_rate_per_s", 0),
            ("half load: HTTP p50 (ms)", "half_p50_ms", 1),
            ("half load: HTTP p99 (ms)", "half_p99_ms", 1),
            (
                "half load: request→`tip.received` (c: `ppv.sold`) p99 (ms)",
                "half_tip_received_p99_ms",
                1,
            ),
        )
        for label, key, digits in rows:
            lines.append(
                f"| {label} | {cell(a.get(key), digits)} | {cell(b.get(key), digits)} "
                f"| {cell(c.get(key), digits)} |"
            )
        lines.append(
            f"| **ratio to pgbench** (a, c: spread fee, b: hot fee) | "
            f"{ratio(a.get('throughput_per_s'), spread)} | "
            f"{ratio(b.get('throughput_per_s'), hot)} | "
            f"{ratio(c.get('throughput_per_s'), spread)} |"
        )
        lines.append("")
    lines += ["### 5. Webhook ingest (Paystack `charge.success`, 10 % duplicates)", ""]
    if hooks:
        s = hooks["summary"]
        checks = [r.get("topups_credited_once") for r in hooks["runs"]]
        rates = sorted({r.get("rate") for r in hooks["runs"]})
        lines += [
            f"Runs: {runs_of(hooks)}; {hooks['workers']} requests in flight at saturation; "
            f"{hooks['date']}.",
            "",
            "| figure | Hub |",
            "|---|---|",
            f"| verified webhooks/s at saturation (2xx) | {cell(s.get('throughput_per_s'), 0)} |",
            f"| p99 to 2xx at saturation (ms) | {cell(s.get('saturation_p99_ms'), 0)} |",
            f"| hub CPU per webhook (ms) | {cell(s.get('hub_cpu_per_webhook_ms'), 1)} |",
            f"| open-loop rate used (target 500/s; half the saturation when below 625/s) | "
            f"{', '.join(str(r) for r in rates)} |",
            f"| p50 / p99 to 2xx at that rate (ms) | {cell(s.get('rate_p50_ms'), 1)} / "
            f"{cell(s.get('rate_p99_ms'), 1)} |",
            f"| every acknowledged top-up credited exactly once, none twice | "
            f"{'yes' if checks and all(checks) else 'NO'} ({sum(bool(c) for c in checks)}/"
            f"{len(checks)} runs) |",
            "",
        ]
        if card:
            c = card["summary"]
            made = [r.get("card_tips_made_once") for r in card["runs"]]
            lines += [
                f"Card tips by webhook (`--card-tips`: each delivery credits the wallet and tips "
                f"from it; runs: {runs_of(card)}; {card['date']}): "
                f"**{cell(c.get('throughput_per_s'), 0)}**/s at saturation, hub CPU "
                f"{cell(c.get('hub_cpu_per_webhook_ms'), 1)} ms a webhook, p99 "
                f"{cell(c.get('rate_p99_ms'), 1)} ms at {cell(c.get('rate'), 0)}/s; every "
                f"acknowledged tip made once: {'yes' if made and all(made) else 'NO'}.",
                "",
            ]
    else:
        lines.append("*not run*\n")


def reconnect(lines: list[str]) -> None:
    data = load("reconnect")
    lines += ["### 6. Reconnect storm", ""]
    if not data:
        lines.append("*not run*\n")
        return
    s = data["summary"]
    lines += [
        f"{data['users']:,} clients drop, {data['events']:,} events while away, reconnects spread "
        f"over {data['spread_seconds']:.0f} s (runs: {runs_of(data)}; {data['date']}).",
        "",
        "| figure | Hub |",
        "|---|---|",
        f"| share recovered (recovered: true and exactly the missed events) | "
        f"{cell(s.get('recovered_share'), 4)} |",
        f"| time from the first reconnect until all recovered (s) | "
        f"{cell(s.get('seconds_until_all_recovered'), 1)} |",
        f"| sequential scans of the event table | {cell(s.get('events_table_seq_scans'), 0)} |",
        f"| index scans of the event table | {cell(s.get('events_table_index_scans'), 0)} |",
        f"| database transactions | {cell(s.get('db_transactions'), 0)} |",
        f"| rows returned / fetched | {cell(s.get('db_rows_returned'), 0)} / "
        f"{cell(s.get('db_rows_fetched'), 0)} |",
        f"| PostgreSQL CPU share meanwhile | {cell(s.get('postgres_cpu_share'), 2)} |",
        f"| hub CPU share meanwhile | {cell(s.get('hub_cpu_share'), 2)} |",
        "",
    ]


def alerts(lines: list[str]) -> None:
    data = load("alerts")
    lines += ["### 7. Tip alerts on screen", ""]
    if not data:
        lines.append("*not run*\n")
        return
    s = data["summary"]
    lines += [
        f"{data['tips_per_run']} tips a run, one a second, from `POST /api/v1/tips` to the alert "
        "drawn in the creator's dashboard and overlay, each in headless Chromium; beside it, the "
        f"same tip's `tip.received` on a python-socketio client (runs: {runs_of(data)}; "
        f"{data['date']}). Goal: on screen within a second.",
        "",
        "| ms from the tip's request | p50 | p95 | max | missing |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("dashboard", "creator dashboard (Chromium)"),
        ("overlay", "overlay (Chromium)"),
        ("socket_client", "peer: python-socketio client"),
        ("http", "the tip's HTTP answer"),
    ):
        row = s.get(key, {})
        lines.append(
            f"| {label} | {cell(row.get('p50_ms'), 0)} | {cell(row.get('p95_ms'), 0)} | "
            f"{cell(row.get('max_ms'), 0)} | {cell(row.get('missing'), 0)} |"
        )
    lines.append("")


EDGE_ATTACKS = {
    "idle": "nothing (the peer: the same node idle)",
    "replay": "issue 12's finding: 5.5 MB of 300,000 unknown keys",
    "unknown_keys": "256 KiB of unknown keys",
    "numbers": "256 KiB of numbers in one array",
    "nesting": "256 KiB of arrays nested 30 deep",
    "long_text": "256 KiB of text in one field",
    "unsigned_webhook": "1 MiB unsigned webhook",
}


def edge(lines: list[str]) -> None:
    data = load("edge")
    lines += ["### 8. Hostile requests at the edge", ""]
    if not data:
        lines.append("*not run*\n")
        return
    before = load("edge-before-issue12")
    s, b = data["summary"], (before or {}).get("summary", {})
    lines += [
        f"`/healthz` from a process of its own, every 20 ms, while {data['attackers']} "
        f"connections send the request back to back for {data['seconds']:.0f} s (runs: "
        f"{runs_of(data)}; {data['date']}). The last column is the same node before the "
        "limits of issue 12 (commit 96368a0, `BENCH_HUB_ROOT`)"
        + (f", runs: {runs_of(before)}." if before else ": not run."),
        "",
        "| attack | answer | `/healthz` p50 (ms) | p99 (ms) | max (ms) | attacks/s | hub CPU "
        "| before: p99 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in EDGE_ATTACKS.items():
        row = s.get(key, {})
        statuses = ", ".join(
            sorted(
                {
                    code
                    for run in data["runs"]
                    for code in run.get(key, {}).get("attack_statuses", {})
                }
            )
        )
        lines.append(
            f"| {label} | {statuses or DASH} | {cell(row.get('healthz_p50_ms'), 1)} | "
            f"{cell(row.get('healthz_p99_ms'), 1)} | {cell(row.get('healthz_max_ms'), 1)} | "
            f"{cell(row.get('attack_per_s'), 0)} | {cell(row.get('hub_cpu_share'), 2)} | "
            f"{cell(b.get(key, {}).get('healthz_p99_ms'), 1)} |"
        )
    lines.append("")


def transports(lines: list[str]) -> None:
    """Issue 14, item 5: the WebSocket layer alone (bench.wsengines), and the whole hub under
    each server and socket path (bench.capacity and bench.fanout with BENCH_SERVER /
    HUB_SOCKET_ENGINE, results tagged granian and psio)."""
    layer = load("wsengines")
    lines.append("### 9. WebSocket layers and servers")
    lines.append("")
    if layer:
        lines += [
            f"The layer alone, {layer['sockets']:,} sockets, {layer['frames']} frames written to "
            f"each (bench.wsengines; runs: {layer['runs']}; {layer['date']}):",
            "",
            "| candidate | CPU per connect (ms) | RSS per socket (KiB) "
            "| CPU per frame written (µs) |",
            "|---|---|---|---|",
        ]
        for kind, label in (
            ("hub", "uvicorn + Hub's endpoint (`realtime.lean`)"),
            ("picows", "picows"),
        ):
            row = layer.get(kind, {})
            lines.append(
                f"| {label} | {cell(row.get('cpu_ms_per_connect'), 3)} | "
                f"{cell(row.get('kib_per_socket'), 1)} | {cell(row.get('cpu_us_per_frame'), 2)} |"
            )
        lines.append("")
    default, psio, granian = load("capacity"), load("capacity-psio"), load("capacity-granian")
    if default and psio and granian:
        level = str(max(default["levels"]))
        rows = (
            ("uvicorn + Hub's endpoint", dig(default, "summary", "hub", level), default),
            ("uvicorn + python-socketio", dig(psio, "summary", "hub", level), psio),
            ("granian + python-socketio", dig(granian, "summary", "hub", level), granian),
            ("Node's Socket.IO", dig(default, "summary", "node", level), default),
        )
        lines += [
            f"The whole hub at {int(level):,} sockets (bench.capacity; runs: 3 each; "
            f"{granian['date']}):",
            "",
            "| server and socket path | time to connect all (s) | RSS per connection (KiB) | "
            "CPU per connect (ms) |",
            "|---|---|---|---|",
        ]
        for label, row, _ in rows:
            row = row or {}
            lines.append(
                f"| {label} | {cell(row.get('seconds_to_connect_all'), 1)} | "
                f"{cell(row.get('rss_per_connection_kib'), 1)} | "
                f"{cell(row.get('cpu_per_connect_ms'), 2)} |"
            )
        lines.append("")
    fan, fan_granian = load("fanout"), load("fanout-granian")
    if fan and fan_granian:
        lines += [
            f"Fan-out under granian (bench.fanout; runs: {runs_of(fan_granian, 'hub')}; "
            f"{fan_granian['date']}) beside Hub's default of table 2:",
            "",
            "| rate/s | figure | granian + python-socketio | uvicorn + Hub's endpoint |",
            "|---|---|---|---|",
        ]
        for rate in map(str, fan_granian["rates"]):
            g = dig(fan_granian, "summary", "hub", rate) or {}
            h = dig(fan, "summary", "hub", rate) or {}
            for label, key, digits in (
                ("delivered / sent", "delivered_share", 4),
                ("p99 (ms)", "p99_ms", 1),
                ("server CPU per 1,000 events (ms)", "server_cpu_per_1000_events_ms", 0),
            ):
                granian_cell, hub_cell = cell(g.get(key), digits), cell(h.get(key), digits)
                lines.append(f"| {rate} | {label} | {granian_cell} | {hub_cell} |")
        lines.append("")


def machine(lines: list[str]) -> None:
    """The machine of each scenario's latest results: one line per machine, naming the
    scenarios it ran (figures from different machines are not to be compared)."""
    seen: dict[str, list[str]] = {}
    for name in ("capacity", "fanout", "tips", "webhooks", "reconnect", "pgpeer", "alerts", "edge"):
        data = load(name)
        if data:
            m = data["machine"]
            versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
            described = (
                f"{m['nproc']} cores ({m['cpu_model']}), {m.get('memory_total')} memory, "
                f"Linux {m['kernel']}. Versions: {versions}."
            )
            seen.setdefault(described, []).append(name)
    for described, names in seen.items():
        prefix = "Machine" if len(seen) == 1 else f"Machine of {', '.join(names)}"
        lines += [f"{prefix}: {described}", ""]


def render() -> str:
    lines: list[str] = [START, ""]
    machine(lines)
    capacity(lines)
    fanout(lines)
    ledger(lines)
    reconnect(lines)
    alerts(lines)
    edge(lines)
    transports(lines)
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    body = render()
    if DOC.exists():
        text = DOC.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            tail = rest.split(END, 1)[1]
            DOC.write_text(head + body + tail)
            print(f"updated {DOC.relative_to(ROOT)}")
            return
    DOC.write_text("# Benchmarks\n\n" + body + "\n")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
