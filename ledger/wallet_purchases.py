"""Pay-per-view purchases from the wallet, many at once, in one call to PostgreSQL
(hub_wallet_purchases, migration 0013).

The call claims each command's Idempotency-Key, charges the server's price of each item, grants
the entitlements and saves each answer with the money; a refusal (unknown item, own item,
already bought, insufficient funds…) is an answer like any other. It runs on a plain asyncpg
connection, inside the caller's transaction: nothing of it is visible or published before that
commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.answers import Answer, answer_of
from ledger.idempotency import transfer_reference


@dataclass(frozen=True, slots=True)
class PurchaseCommand:
    buyer_id: str  # the caller
    key: str  # their Idempotency-Key
    fingerprint: str  # of the request (ledger.idempotency.request_fingerprint)
    content_id: int
    fee_bps: int


_CALL = """
SELECT ord, status, body, replayed, refusal, events FROM hub_wallet_purchases(
    $1::text[], $2::text[], $3::text[], $4::bigint[], $5::integer[], $6::text[])
"""


async def post_wallet_purchases(
    connection: Any, commands: Sequence[PurchaseCommand]
) -> list[Answer]:
    """Post `commands` in the connection's open transaction, in order, and answer each.

    Each purchase moves the item's price from the buyer's wallet to the creator's earnings and
    the platform fee and grants the buyer access, with ppv.unlocked, ppv.sold and both
    balance.updated events, exactly as ledger.content.purchase does.
    """
    rows = await connection.fetch(
        _CALL,
        [c.buyer_id for c in commands],
        [c.key for c in commands],
        [c.fingerprint for c in commands],
        [c.content_id for c in commands],
        [c.fee_bps for c in commands],
        [transfer_reference("purchase", c.buyer_id, c.key) for c in commands],
    )
    return [answer_of(row) for row in rows]
