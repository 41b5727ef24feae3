"""The bus message: a header a node reads, and the packet it passes on without re-encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ledger.events import Event
from realtime.bus import BusEvent, decode, encode


def test_an_event_travels_as_a_header_and_the_packet_every_socket_gets() -> None:
    occurred = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    event = Event(7, "fan\nwith a newline", 3, "tip.sent", occurred, {"note": "a\nb", "n": 1})
    message = decode(encode(event))
    assert isinstance(message, BusEvent)
    assert (message.user_id, message.seq, message.type) == ("fan\nwith a newline", 3, "tip.sent")
    assert message.frame.occurred == occurred.timestamp()
    # What python-socketio would have sent: an EVENT packet for "/" with [type, envelope].
    assert message.frame.packet[0] == "2"
    assert json.loads(message.frame.packet[1:]) == ["tip.sent", event.envelope()]
    assert message.envelope == event.envelope()


def test_control_messages_and_malformed_ones() -> None:
    assert decode(json.dumps({"control": {"type": "overlay_key.revoked", "key_id": 4}})) == {
        "type": "overlay_key.revoked",
        "key_id": 4,
    }
    for malformed in ("", "[1]", '["u", 1, "t", null]\n{}', '{"control": 3}', "not json\n2[]"):
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode(malformed)
