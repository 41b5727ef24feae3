"""bench.tips with probes: PG log (autovacuum, checkpoints, slow statements), pg_stat_activity
samples, per-request half-load outcomes with wall time, and the hub's probe log."""
import asyncio, json, os, sys, time
sys.path.insert(0, "/work/main")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
os.environ["HUB_TAIL_PROBE"] = OUT
os.environ["PYTHONPATH"] = "/tmp/tail/probe"
import bench.common as common
common.POSTGRES_OPTIONS = common.POSTGRES_OPTIONS + [
    *os.environ.get("EXTRA_PG","").split("|"), "-c log_autovacuum_min_duration=0", "-c log_checkpoints=on", "-c log_min_duration_statement=15",
]
import bench.tips as tips
import asyncpg

OFFSET = time.time() - time.monotonic()
phases = []
_orig_open = tips.open_loop
_orig_closed = tips.closed_loop

async def sampler(url, stop, rows):
    conn = await asyncpg.connect(url)
    while not stop.is_set():
        t = time.time()
        r = await conn.fetch("select backend_type, state, wait_event_type, wait_event, left(query, 60) q, pid from pg_stat_activity where pid <> pg_backend_pid() and (backend_type <> 'client backend' or state = 'active')")
        rows.append([t, [dict(x) for x in r if x["backend_type"] not in ("background writer", "walwriter", "checkpointer", "autovacuum launcher", "logical replication launcher", "archiver") or x["wait_event"] not in (None,)]])
        await asyncio.sleep(0.05)
    await conn.close()

URL = None
async def open_loop(host, port, send, rate, seconds, **kw):
    stop = asyncio.Event(); rows = []
    task = asyncio.create_task(sampler(URL, stop, rows))
    w0 = time.time()
    load = await _orig_open(host, port, send, rate, seconds, **kw)
    stop.set(); await task
    phases.append({"kind": "half", "rate": rate, "wall_start": w0,
                   "outcomes": [[o.scheduled_ns / 1e9 + OFFSET, o.latency_ms, o.status] for o in load.outcomes],
                   "activity": rows})
    return load

async def closed_loop(host, port, send, workers, seconds):
    w0 = time.time()
    load = await _orig_closed(host, port, send, workers, seconds)
    phases.append({"kind": "sat", "wall_start": w0, "wall_end": time.time()})
    return load

tips.open_loop = open_loop
tips.closed_loop = closed_loop
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
shapes = sys.argv[3].split(",") if len(sys.argv) > 3 else ["many_creators"]
common.raise_nofile()
with common.Services() as services:
    URL = services.database_url.replace("postgresql+asyncpg", "postgresql")
    payload = common.run(tips.main_async(services, runs, 10, 32, False, 1, shapes))
    import shutil
    shutil.copy(services.embedded.postgres.log if hasattr(services.embedded, "postgres") else services.home / "postgres" / "log", OUT + "/pg.log") if False else None
    for p in services.home.rglob("*.log"):
        shutil.copy(p, OUT + "/" + p.name)
json.dump({"phases": phases, "summary": payload["summary"]}, open(OUT + "/phases.json", "w"))
print(json.dumps(payload["summary"], indent=1)[:3000])
