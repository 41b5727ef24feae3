"""pgbench at a fixed rate on the bench's server: per-transaction latency percentiles."""
import glob, os, subprocess, sys, statistics
sys.path.insert(0, "/work/main")
from bench.common import Services
from bench import pgpeer

rates = [int(r) for r in sys.argv[1:]] or [500]
with Services() as services:
    script = pgpeer.prepare(services)
    for fee in (64, 1):
        for rate in rates:
            for run in range(3):
                d = services.home / f"log-{fee}-{rate}-{run}"
                d.mkdir()
                cmd = [pgpeer._bin("pgbench"), "-h", "127.0.0.1", "-p", str(services.postgres_port), "-U", "postgres",
                       "-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", "10", "-R", str(rate), "--max-tries", "10",
                       "-l", "--log-prefix", str(d / "tx"),
                       "-D", f"fee_accounts={fee}", "-f", str(script), pgpeer.DATABASE]
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
                lat = []
                for f in glob.glob(str(d / "tx*")):
                    for line in open(f):
                        p = line.split()
                        lat.append((int(p[2]) + (int(p[6]) if len(p) > 6 else 0)) / 1000)
                lat.sort()
                q = lambda x: lat[min(len(lat) - 1, int(len(lat) * x))]
                print(f"fee_accounts={fee} rate={rate} run={run}: n={len(lat)} p50={q(.5):.1f} p99={q(.99):.1f} p999={q(.999):.1f} max={lat[-1]:.1f} ms", flush=True)
