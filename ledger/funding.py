"""Development-only funding: demo money enters wallets through the ledger, never by writing
balances. The source is an owner-less `dev_funding` account that may go negative, so the books
always balance: its negative balance is exactly the demo money in circulation.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Kind, ensure_system_account, find_account
from ledger.errors import DuplicateTransfer
from ledger.events import record_events
from ledger.money import Money
from ledger.transfers import Leg, post_transfer


async def fund_wallet_for_development(
    session: AsyncSession, user_id: str, amount: Money, reference: str
) -> bool:
    """Credit `user_id`'s wallet from dev_funding once per `reference`; False if done before."""
    source = await ensure_system_account(session, Kind.DEV_FUNDING, amount.currency)
    wallet = await find_account(session, user_id, Kind.WALLET, amount.currency)
    try:
        transfer = await post_transfer(
            session,
            kind="dev_funding",
            currency=amount.currency,
            legs=[Leg(source, -amount.amount), Leg(wallet.id, amount.amount)],
            reference=reference,
        )
    except DuplicateTransfer:
        return False
    entry = transfer.entry(wallet.id)
    await record_events(
        session, [(user_id, "balance.updated", entry.balance_event(amount.currency))]
    )
    return True
