"""Every scenario with its peers, one after the other, each in its own process with a time limit,
then the tables of docs/benchmarks.md. `make bench` runs this.

    python -m bench.all [--runs 3] [--only capacity,fanout,...]

BENCH_RUNS sets the runs per scenario (default 3); BENCH_PROFILE=1 adds py-spy profiles of the
hub for fan-out, tips and webhooks (bench/results/profiles/).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import ROOT, log

# (module, extra arguments, time limit in seconds)
SCENARIOS: list[tuple[str, list[str], int]] = [
    ("pgpeer", [], 300),
    ("capacity", [], 1_200),
    ("fanout", [], 1_800),
    ("tips", [], 600),
    ("webhooks", [], 600),
    ("webhooks", ["--card-tips"], 600),
    ("sender", [], 900),
    ("reconnect", [], 600),
    ("alerts", [], 600),
    ("edge", [], 600),
    ("wsengines", [], 300),
]
PROFILED = {"fanout", "tips", "webhooks"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)))
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    wanted = {name for name in args.only.split(",") if name}
    profile = os.environ.get("BENCH_PROFILE") == "1"
    failed: list[str] = []
    started = time.monotonic()
    for module, extra, limit in SCENARIOS:
        if wanted and module not in wanted:
            continue
        command = [sys.executable, "-m", f"bench.{module}", "--runs", str(args.runs), *extra]
        if profile and module in PROFILED:
            command.append("--profile")
        log(f"== {' '.join(command[1:])} (limit {limit} s)")
        begun = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        try:
            code = process.wait(limit)
        except subprocess.TimeoutExpired:
            log(f"{module} passed its {limit} s limit: stopping it (pid {process.pid})")
            process.terminate()
            try:
                code = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
        log(f"== {module}: exit {code} after {time.monotonic() - begun:.0f} s")
        if code != 0:
            failed.append(module)
    subprocess.run([sys.executable, "-m", "bench.report"], cwd=ROOT, check=False)
    log(f"all scenarios: {time.monotonic() - started:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
