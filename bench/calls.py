"""Python work per request, counted rather than timed: the hub runs under cProfile while
bench.tips's closed loop (32 connections, back to back) buys content or tips for a short and a
long while; the calls per request are the difference of the two runs' call counts over the
difference of their requests, so start-up, the warm-up and idle tasks cancel out.

Throughput on a shared 2-core host swings by 20-40 % between runs of the same code; a count of
function calls moves by a percent or two. So this is how a change to the request path is
compared with the code before it when the machine is noisy: run it in each checkout (a
`git worktree` of the older commit; this file may be copied there, it uses only bench.common
and bench.tips), then `--compare` the two results for the functions whose counts moved.

    python -m bench.calls [--shape purchases|many_creators] [--seconds 4,12]
    python -m bench.calls --compare BEFORE.json AFTER.json

Counts, not time: a C function that got slower, or a query PostgreSQL takes longer over, does
not show here (the throughput benches and py-spy's profiles do that).
"""

from __future__ import annotations

import argparse
import json
import pstats
import re
import signal
import uuid
from pathlib import Path
from typing import Any

from bench.common import (
    JWT_SECRET,
    PYTHON,
    LoadClient,
    Services,
    create_users,
    log,
    raise_nofile,
    run,
    scratch_file,
    start_hub,
    token,
    write_result,
)
from bench.httpclient import HttpConnection, closed_loop
from bench.tips import CREATORS, FANS, fund, new_items, purchaser, tipper, warm

# The hub's own entry point under cProfile; the profile is written when uvicorn returns (SIGINT).
PROFILED = (
    "import cProfile, os, runpy, sys\n"
    "out, module = sys.argv[1], sys.argv[4]\n"  # argv: out python -m hub serve
    "sys.argv = [module, *sys.argv[5:]]\n"
    "sys.path.insert(0, os.getcwd())\n"
    "profile = cProfile.Profile()\n"
    "profile.enable()\n"
    "try:\n"
    "    runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
    "except SystemExit:\n"
    "    pass\n"
    "finally:\n"
    "    profile.disable()\n"
    "    profile.dump_stats(out)\n"
)
WORKERS = 32


def counts(path: Path) -> dict[str, int]:
    """Calls by function, named by file (from site-packages or the checkout) and name."""
    out: dict[str, int] = {}
    for (file, _line, name), (_cc, calls, *_rest) in pstats.Stats(str(path)).stats.items():
        file = re.sub(r".*/site-packages/", "", file)
        file = re.sub(r"^/.*?/(hub|ledger|realtime|jobs|providers|sandbox)/", r"\1/", file)
        key = f"{file}:{re.sub(r' at 0x[0-9a-f]+', '', name)}"
        out[key] = out.get(key, 0) + calls
    return out


async def one_run(
    services: Services, shape: str, fans: list[str], creators: list[str], seconds: float
) -> tuple[int, dict[str, int]]:
    """(requests answered 201, calls by function) of a hub that served `seconds` of load."""
    sellers = creators[:20]
    items = await new_items(services.database_url, sellers) if shape == "purchases" else []
    with scratch_file(".prof") as out:
        server = start_hub(services, prefix=[PYTHON, "-c", PROFILED, str(out)])
        client = await LoadClient.start()
        try:
            targets = sellers if shape == "purchases" else creators
            await client.call(
                "connect", url=server.url, users=targets, role="creator", token_secret=JWT_SECRET
            )
            await warm(server, fans)
            if shape == "purchases":  # each item once, by fans the load leaves out
                connection = HttpConnection("127.0.0.1", server.port)
                for i, item in enumerate(items):
                    await connection.request(
                        "POST",
                        f"/api/v1/content/{item}/purchase",
                        {
                            "Authorization": f"Bearer {token(fans[-1 - i % 5], 'fan')}",
                            "Idempotency-Key": uuid.uuid4().hex,
                        },
                        b"",
                    )
                connection.close()
                send = purchaser(fans[:-5], items)
            else:
                send = tipper(fans, creators)
            load = await closed_loop("127.0.0.1", server.port, send, WORKERS, seconds)
            answered = len(load.ok(201))
            log(f"{shape} under cProfile, {seconds:.0f} s: {answered} answered 201")
        finally:
            await client.stop()
            server.process.send_signal(signal.SIGINT)
            try:
                server.process.wait(60)
            finally:
                server.stop()
        return answered, counts(out)


async def measure(services: Services, shape: str, short: float, long: float) -> dict[str, Any]:
    fans = [f"tfan-{i:04d}" for i in range(FANS)]
    creators = [f"tcreator-{i:04d}" for i in range(CREATORS)]
    await create_users(services.database_url, fans, "fan")
    await create_users(services.database_url, creators, "creator")
    await fund(services.database_url, fans)
    n_short, short_counts = await one_run(services, shape, fans, creators, short)
    n_long, long_counts = await one_run(services, shape, fans, creators, long)
    requests = n_long - n_short
    per_request = {
        name: (long_counts.get(name, 0) - short_counts.get(name, 0)) / requests
        for name in set(short_counts) | set(long_counts)
    }
    total = (sum(long_counts.values()) - sum(short_counts.values())) / requests
    log(f"{shape}: {total:.0f} Python calls per request ({requests} requests between the runs)")
    top = sorted(per_request.items(), key=lambda item: -item[1])
    return {
        "shape": shape,
        "seconds": [short, long],
        "requests": [n_short, n_long],
        "calls_per_request": total,
        "by_function": {name: round(calls, 2) for name, calls in top if abs(calls) >= 0.05},
    }


def compare(before_path: str, after_path: str) -> None:
    before, after = (json.loads(Path(p).read_text()) for p in (before_path, after_path))
    b, a = before["calls_per_request"], after["calls_per_request"]
    print(f"calls per request: {b:.0f} → {a:.0f} ({(a - b) / b:+.1%})")
    fb, fa = before["by_function"], after["by_function"]
    moved = sorted(
        ((fa.get(k, 0.0) - fb.get(k, 0.0), k) for k in set(fb) | set(fa)), key=lambda m: -abs(m[0])
    )
    for delta, name in moved[:40]:
        if abs(delta) >= 0.5:
            print(f"{delta:+8.1f}  {fb.get(name, 0.0):8.1f} → {fa.get(name, 0.0):8.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="purchases", choices=["purchases", "many_creators"])
    parser.add_argument("--seconds", default="4,12", help="the short and the long run")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    short, long = (float(s) for s in args.seconds.split(","))
    raise_nofile()
    with Services() as services:
        payload = run(measure(services, args.shape, short, long))
    write_result(f"calls-{args.shape}", payload)


if __name__ == "__main__":
    main()
