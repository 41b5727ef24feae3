"""The ledger's invariants, checked on a live database (`hub check`, and the test suite)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Each check is a query returning the rows that break it (at most a few, for the report).
CHECKS: dict[str, str] = {
    "every transfer sums to zero": """
        SELECT transfer_id, sum(amount) AS total FROM entries
        GROUP BY transfer_id HAVING sum(amount) <> 0 LIMIT 10
    """,
    "every transfer has two or more entries in its own currency": """
        SELECT t.id, count(e.id) AS entries FROM transfers t
        LEFT JOIN entries e ON e.transfer_id = t.id
        GROUP BY t.id
        HAVING count(e.id) < 2 OR bool_or(e.currency <> t.currency) LIMIT 10
    """,
    "every balance equals the sum of its entries": """
        SELECT a.id, a.balance, coalesce(sum(e.amount), 0) AS entries FROM accounts a
        LEFT JOIN entries e ON e.account_id = a.id
        GROUP BY a.id HAVING a.balance <> coalesce(sum(e.amount), 0) LIMIT 10
    """,
    "every balance equals the balance after its last entry": """
        SELECT a.id, a.balance, last.balance_after FROM accounts a
        JOIN LATERAL (SELECT balance_after FROM entries WHERE account_id = a.id
                      ORDER BY id DESC LIMIT 1) last ON true
        WHERE last.balance_after <> a.balance LIMIT 10
    """,
    "no wallet is negative": """
        SELECT id, owner_id, currency, balance FROM accounts
        WHERE kind = 'wallet' AND balance < 0 LIMIT 10
    """,
    "no account that may not go negative is below its holds": """
        SELECT id, kind, balance, held FROM accounts
        WHERE NOT may_go_negative AND kind <> 'earnings' AND balance - held < 0 LIMIT 10
    """,
    "every account's held amount equals its pending holds": """
        SELECT a.id, a.held, coalesce(sum(h.amount), 0) AS pending
        FROM accounts a LEFT JOIN holds h ON h.account_id = a.id AND h.status = 'pending'
        GROUP BY a.id HAVING a.held <> coalesce(sum(h.amount), 0) LIMIT 10
    """,
    "refunds never exceed their payment": """
        SELECT p.id, p.amount, p.refunded_amount, coalesce(sum(r.amount), 0) AS refunds
        FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id
        GROUP BY p.id
        HAVING coalesce(sum(r.amount), 0) <> p.refunded_amount OR p.refunded_amount > p.amount
        LIMIT 10
    """,
    # A provider's clearing account settles to zero against what the provider did: it owes us
    # every succeeded payment, less what it refunded and what it paid out for us. Reversed
    # payouts net to zero.
    "clearing accounts match the providers' payments, refunds and payouts": """
        WITH expected AS (
            SELECT provider, currency, sum(amount) AS amount FROM (
                SELECT provider, currency, -amount AS amount FROM payments
                WHERE status = 'succeeded'
                UNION ALL
                SELECT p.provider, r.currency, r.amount FROM refunds r
                JOIN payments p ON p.id = r.payment_id
                UNION ALL
                SELECT provider, currency, amount FROM payouts WHERE status = 'paid'
            ) movements GROUP BY provider, currency
        )
        SELECT coalesce(a.provider, x.provider) AS provider,
               coalesce(a.currency, x.currency) AS currency,
               coalesce(a.balance, 0) AS balance, coalesce(x.amount, 0) AS expected
        FROM (SELECT * FROM accounts WHERE kind = 'provider_clearing') a
        FULL JOIN expected x ON x.provider = a.provider AND x.currency = a.currency
        WHERE coalesce(a.balance, 0) <> coalesce(x.amount, 0) LIMIT 10
    """,
}


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    rows: list[dict[str, object]]


async def run_checks(session: AsyncSession) -> list[Violation]:
    """Every violated invariant with up to ten offending rows; empty when the books are right."""
    violations = []
    for name, query in CHECKS.items():
        rows = (await session.execute(text(query))).mappings().all()
        if rows:
            violations.append(Violation(name, [dict(row) for row in rows]))
    return violations
