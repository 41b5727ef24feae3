import json, sys, re, glob, datetime
d = sys.argv[1]
ph = json.load(open(d + "/phases.json"))
probe = []
for f in sorted(glob.glob(d + "/probe-*.log")):
    for line in open(f):
        p = line.split()
        probe.append((float(p[1]), p[0], line.strip()))
probe.sort()
pglog = []
for line in open(d + "/postgres.log", errors="replace"):
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\w+)", line)
    if m:
        t = datetime.datetime.strptime(m.group(1) + " " + m.group(2), "%Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=datetime.timezone.utc).timestamp()
        pglog.append((t, line.strip()[:220]))
for half in [p for p in ph["phases"] if p["kind"] == "half"]:
    oc = half["outcomes"]; w0 = half["wall_start"]; w1 = max(o[0] for o in oc) + 1
    lat = sorted(o[1] for o in oc)
    print(f"=== half at {half['rate']:.0f}/s: n={len(oc)} p50={lat[len(lat)//2]:.1f} p99={lat[int(len(lat)*.99)]:.1f} max={lat[-1]:.1f}")
    # per 100 ms window: count slow
    slow = [o for o in oc if o[1] > 25]
    print(f"  slow>25ms: {len(slow)}")
    wins = {}
    for o in slow:
        wins.setdefault(int((o[0]-w0)*10), []).append(o[1])
    for k in sorted(wins):
        print(f"  t+{k/10:.1f}s: {len(wins[k])} slow, max {max(wins[k]):.0f} ms")
    ev = [x for x in probe if w0 <= x[0] <= w1 and (x[1] != "batch" or float(re.search(r"total=([\d.]+)", x[2]).group(1)) > 15)]
    for t, kind, line in ev[:60]:
        print(f"  probe t+{t-w0:.2f}: {line[:160]}")
    for t, line in pglog:
        if w0 - 1 <= t <= w1:
            print(f"  pg t+{t-w0:.2f}: {line}")
    bs = [x for x in probe if w0 <= x[0] <= w1 and x[1] == "batch"]
    tot = sorted(float(re.search(r"total=([\d.]+)", x[2]).group(1)) for x in bs)
    runs_ = sorted(float(re.search(r"run=([\d.]+)", x[2]).group(1)) for x in bs)
    ns = [int(re.search(r"n=(\d+)", x[2]).group(1)) for x in bs]
    if tot:
        print(f"  batches {len(bs)} mean n={sum(ns)/len(ns):.2f}; total p50={tot[len(tot)//2]:.1f} p99={tot[int(len(tot)*.99)]:.1f} max={tot[-1]:.1f}; run p50={runs_[len(runs_)//2]:.1f} p99={runs_[int(len(runs_)*.99)]:.1f}")
    # autovacuum seen in activity
    av = {}
    for t, rows in half["activity"]:
        for r in rows:
            if r["backend_type"] == "autovacuum worker" or (r["wait_event"] and r["backend_type"] == "client backend"):
                key = (r["backend_type"], r["wait_event_type"], r["wait_event"], (r["q"] or "")[:40])
                av[key] = av.get(key, 0) + 1
    for k, v in sorted(av.items(), key=lambda x: -x[1])[:12]:
        print(f"  activity {v}: {k}")
