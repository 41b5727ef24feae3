import os
if os.environ.get("HUB_TAIL_PROBE") and os.environ.get("HUB_PORT"):
    import asyncio, gc, sys, time
    sys.path.insert(0, "/work/main")
    out = open(os.path.join(os.environ["HUB_TAIL_PROBE"], f"probe-{os.getpid()}.log"), "w", buffering=1)
    _gc = {}
    def _cb(phase, info):
        if phase == "start":
            _gc["t"] = time.perf_counter()
        else:
            d = (time.perf_counter() - _gc.get("t", time.perf_counter())) * 1000
            if d > 2 or info.get("generation") == 2:
                out.write(f"gc {time.time():.6f} {d:.2f} gen={info.get('generation')} collected={info.get('collected')}\n")
    gc.callbacks.append(_cb)
    import ledger.group_commit as G
    _orig_commit = G.GroupCommit._commit
    _orig_run_name = {}
    _started = []
    async def _lag():
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            over = (time.perf_counter() - t - 0.005) * 1000
            if over > 4:
                out.write(f"lag {time.time():.6f} {over:.2f}\n")
    _times = {}
    async def _commit(self, batch, isolate):
        if not _started:
            _started.append(asyncio.get_running_loop().create_task(_lag()))
        if not getattr(self, "_probed", False):
            self._probed = True
            orig_run = self._run
            async def run(conn, cmds):
                t1 = time.perf_counter()
                try:
                    return await orig_run(conn, cmds)
                finally:
                    _times[asyncio.current_task()] = (t1, time.perf_counter())
            run.__name__ = getattr(orig_run, "__name__", "?")
            self._run = run
        t0 = time.perf_counter(); w0 = time.time()
        try:
            await _orig_commit(self, batch, isolate)
        finally:
            t2 = time.perf_counter()
            t1, te = _times.pop(asyncio.current_task(), (t0, t0))
            out.write(f"batch {w0:.6f} n={len(batch)} acq={(t1-t0)*1000:.2f} run={(te-t1)*1000:.2f} commit+after={(t2-te)*1000:.2f} total={(t2-t0)*1000:.2f} {self._run.__name__}\n")
    G.GroupCommit._commit = _commit
