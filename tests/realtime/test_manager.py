"""HubManager keeps python-socketio's room bookkeeping exactly, with a per-socket index."""

from __future__ import annotations

import random

import socketio

from realtime.manager import HubManager


def test_rooms_match_python_socketios_own_bookkeeping() -> None:
    ours = HubManager("redis://127.0.0.1:1/0", write_only=True)
    theirs = socketio.AsyncManager()
    rng = random.Random(5)
    sids: list[str] = []  # the connected ones
    for step in range(2_000):
        action = rng.random()
        for manager in (ours, theirs):
            rng_state = rng.getstate()
            if action < 0.35 or not sids:
                sid = f"sid-{step}"  # what pre_connect does, with a sid of our choosing
                manager.basic_enter_room(sid, "/", None, eio_sid=f"eio-{step}")
                manager.basic_enter_room(sid, "/", sid, eio_sid=f"eio-{step}")
            elif action < 0.6:
                manager.basic_enter_room(rng.choice(sids), "/", f"room-{rng.randrange(20)}")
            elif action < 0.8:
                manager.basic_leave_room(rng.choice(sids), "/", f"room-{rng.randrange(20)}")
            elif action < 0.85:
                room = f"room-{rng.randrange(20)}"
                if room in manager.rooms.get("/", {}):
                    manager.basic_close_room(room, "/")
            else:
                gone = rng.choice(sids)
                manager.basic_disconnect(gone, "/")
            if manager is ours:
                rng.setstate(rng_state)  # the same choices for both managers
        if action < 0.35 or not sids:
            sids.append(sid)
        elif action >= 0.85:
            sids.remove(gone)
        assert ours.rooms == theirs.rooms, f"step {step}"
        for sid in sids[-5:]:
            assert sorted(ours.get_rooms(sid, "/"), key=str) == sorted(
                theirs.get_rooms(sid, "/"), key=str
            )
    assert ours.rooms  # the walk left some rooms to compare
    for sid in sids:
        ours.basic_disconnect(sid, "/")
    assert not ours.rooms and not ours._rooms_of
