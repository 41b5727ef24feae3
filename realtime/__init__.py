"""Realtime delivery: the Socket.IO server, its rooms, and emitting committed events."""
