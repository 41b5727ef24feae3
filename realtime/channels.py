"""A creator's public channel: what anyone on the creator's page may see of the creator's log.

The channel is a view of the creator's own event log, not a log of its own: a tip written for
the creator (`tip.received`, with the fee, the net and the fan's id) is shown on the channel as
`public.tip` with its public part only (the overlay's rule: who, how much, the message). So the
channel is durable, ordered and recoverable exactly as the log is, and costs the money path
nothing. Each event of the creator's is projected once per node (the projection is cached by
event), encoded once and framed once, and the same frame goes to every local viewer.

A viewer's cursor is the `id` of the last public event it saw; the creator's private events are
skipped without a trace (no `seq`, no count, and a cursor must be the id of one of the creator's
public events).

Events written public go out as they are: the creator's goal (`public.goal`) and live state
(`public.live`), and what a platform publishes to the channel (POST /api/v1/notifications with
`channel`: `public.app.<type>`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ledger.events import PUBLIC_PREFIX
from realtime.bus import BusEvent, Frame, frame

# A creator's event type → what the channel shows of it.
PUBLIC_TYPES = {"tip.received": "public.tip"}


def public_tip(data: dict[str, Any]) -> dict[str, Any]:
    """The public part of a tip: never balances, fees, or the fan's id."""
    return {
        "tip_id": data.get("tip_id"),
        "name": data.get("fan_name") or "Someone",
        "amount": data.get("amount"),
        "currency": data.get("currency"),
        "message": data.get("message"),
    }


@lru_cache(maxsize=1024)
def public_frame(event: BusEvent) -> Frame | None:
    """What a viewer of `event.user_id`'s channel receives of the event: None for a private
    one. Cached: one projection and one encoding for every viewer of every node's sockets."""
    envelope = event.envelope
    if event.type.startswith(PUBLIC_PREFIX):  # written public: shown as it was written
        shown, data = event.type, envelope["data"]
    elif event.type in PUBLIC_TYPES:
        shown, data = PUBLIC_TYPES[event.type], public_tip(envelope["data"])
    else:
        return None
    public = {
        "id": envelope["id"],
        "channel": event.user_id,
        "type": shown,
        "occurred_at": envelope["occurred_at"],
        "data": data,
    }
    return frame(shown, public, event.frame.occurred)
