"""Hub's Socket.IO client manager: python-socketio's Redis manager with its room bookkeeping
indexed both ways.

python-socketio finds a disconnecting client's rooms by scanning every room of the namespace
(`BaseManager.basic_disconnect`, `get_rooms`): with a room per socket, each disconnect costs
O(connections), and a node dropping 5,000 sockets at once spent most of a core for over a
minute on it (docs/benchmarks.md). Here each socket's rooms are also kept per socket, so a
disconnect costs O(its rooms). Nothing else changes: rooms are entered and left through the
same two methods, which every other path (pre-connect, close_room, leave_room) goes through.
"""

from __future__ import annotations

from typing import Any

import socketio


class HubManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}  # (namespace, sid) → rooms

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # The same as python-socketio's, with the rooms from the index instead of a scan.
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self._rooms_of.pop((namespace, sid), None)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if namespace in pending and sid in pending[namespace]:
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]
