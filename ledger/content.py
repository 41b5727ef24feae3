"""Pay-per-view: creators' priced content, purchases and the entitlements they grant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import AlreadyPurchased, InvalidTransfer, UnknownContent
from ledger.events import Event, record_events
from ledger.money import Money
from ledger.sales import Sale, creator_earnings, pay_creator
from ledger.schema import content, entitlements
from ledger.statements import MAX_PAGE


@dataclass(frozen=True, slots=True)
class Content:
    id: int
    creator_id: str
    title: str
    price: Money
    created_at: datetime
    body: str | None = None  # what a purchase gives access to

    def as_json(self) -> dict[str, Any]:
        """Without the body: safe to show anyone."""
        return {
            "id": self.id,
            "creator_id": self.creator_id,
            "title": self.title,
            "price": self.price.as_json(),
            "created_at": self.created_at.isoformat(),
        }

    def as_seen(self, access: bool) -> dict[str, Any]:
        """The item as a caller sees it: `has_access`, and the body only with access."""
        seen = {**self.as_json(), "has_access": access}
        if access:
            seen["body"] = self.body
        return seen


@dataclass(frozen=True, slots=True)
class Purchase:
    content: Content
    buyer_id: str
    sale: Sale
    events: list[Event]

    def as_json(self) -> dict[str, Any]:
        currency = self.content.price.currency
        return {
            "id": self.sale.transfer.id,
            "kind": "purchase",
            "content_id": self.content.id,
            "buyer_id": self.buyer_id,
            "creator_id": self.content.creator_id,
            "amount": self.content.price.as_json(),
            "fee": {"amount": self.sale.fee, "currency": currency},
            "net": {"amount": self.sale.net, "currency": currency},
            "created_at": self.sale.transfer.created_at.isoformat(),
        }


async def create_content(
    session: AsyncSession, creator_id: str, title: str, price: Money, *, body: str | None = None
) -> Content:
    await creator_earnings(session, creator_id, price.currency)  # a creator, in this currency
    row = (
        await session.execute(
            content.insert()
            .values(
                creator_id=creator_id,
                title=title,
                price=price.amount,
                currency=price.currency,
                body=body,
            )
            .returning(*content.c)
        )
    ).one()
    return _content(row)


async def get_content(session: AsyncSession, content_id: int) -> Content:
    row = (await session.execute(select(content).where(content.c.id == content_id))).one_or_none()
    if row is None:
        raise UnknownContent(f"no content {content_id}", param="content_id")
    return _content(row)


async def has_access(session: AsyncSession, user_id: str, item: Content) -> bool:
    if item.creator_id == user_id:
        return True
    return bool(
        await session.scalar(
            select(
                exists().where(
                    entitlements.c.buyer_id == user_id, entitlements.c.content_id == item.id
                )
            )
        )
    )


_LIST_CONTENT = """
    SELECT c.id, c.creator_id, c.title, c.price, c.currency, c.created_at, c.body,
           (c.creator_id = :viewer_id OR e.buyer_id IS NOT NULL) AS has_access
    FROM content c
    LEFT JOIN entitlements e ON e.content_id = c.id AND e.buyer_id = :viewer_id
    WHERE c.creator_id = :creator_id {paged}
    ORDER BY c.id DESC
    LIMIT :limit
"""
_LIST_FIRST = text(_LIST_CONTENT.format(paged=""))
_LIST_AFTER = text(_LIST_CONTENT.format(paged="AND c.id < :before"))


async def list_content(
    session: AsyncSession,
    creator_id: str,
    viewer_id: str,
    *,
    limit: int,
    before: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The creator's content newest first, as `viewer_id` sees it (Content.as_seen); (page,
    cursor for the next page or None). One query for the page and the viewer's access (an index
    range scan on content_creator, a primary-key probe of entitlements per item).
    """
    limit = max(1, min(limit, MAX_PAGE))
    params: dict[str, Any] = {"creator_id": creator_id, "viewer_id": viewer_id, "limit": limit + 1}
    if before is not None:
        params["before"] = before
    statement = _LIST_FIRST if before is None else _LIST_AFTER
    rows = (await session.execute(statement, params)).all()
    page = [_content(row).as_seen(bool(row.has_access)) for row in rows[:limit]]
    cursor = rows[limit - 1].id if len(rows) > limit else None
    return page, cursor


async def ensure_purchasable(session: AsyncSession, buyer_id: str, item: Content) -> None:
    if item.creator_id == buyer_id:
        raise InvalidTransfer("you cannot buy your own content", param="content_id")
    if await has_access(session, buyer_id, item):
        raise AlreadyPurchased("you already have access to this content", param="content_id")


async def purchase(
    session: AsyncSession,
    *,
    buyer_id: str,
    content_id: int,
    fee_bps: int,
    reference: str,
    payment_id: int | None = None,
) -> Purchase:
    """Pay the server's price from the buyer's wallet and grant the entitlement, once.

    Purchases of one item by one buyer are serialised on an advisory lock, so two concurrent
    attempts (different idempotency keys) charge once: the second sees the entitlement and gets
    AlreadyPurchased. The primary key on (buyer, content) backs this up in the database.
    """
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"purchase:{buyer_id}:{content_id}"},
    )
    item = await get_content(session, content_id)
    await ensure_purchasable(session, buyer_id, item)
    sale = await pay_creator(
        session,
        payer_id=buyer_id,
        creator_id=item.creator_id,
        amount=item.price,
        fee_bps=fee_bps,
        kind="purchase",
        reference=reference,
        metadata={"content_id": item.id, "buyer_id": buyer_id, "payment_id": payment_id},
    )
    await session.execute(
        entitlements.insert().values(
            buyer_id=buyer_id,
            content_id=item.id,
            transfer_id=sale.transfer.id,
            payment_id=payment_id,
            amount=item.price.amount,
            fee=sale.fee,
            currency=item.price.currency,
        )
    )
    currency = item.price.currency
    sold = {
        "content_id": item.id,
        "title": item.title,
        "buyer_id": buyer_id,
        "amount": item.price.amount,
        "fee": sale.fee,
        "net": sale.net,
        "currency": currency,
        "transfer_id": sale.transfer.id,
    }
    unlocked = {
        "content_id": item.id,
        "title": item.title,
        "amount": item.price.amount,
        "currency": currency,
        "transfer_id": sale.transfer.id,
    }
    events = await record_events(
        session,
        [
            (buyer_id, "ppv.unlocked", unlocked),
            (item.creator_id, "ppv.sold", sold),
            (buyer_id, "balance.updated", sale.wallet.balance_event(currency)),
            (item.creator_id, "balance.updated", sale.earnings.balance_event(currency)),
        ],
    )
    return Purchase(content=item, buyer_id=buyer_id, sale=sale, events=events)


def _content(row: object) -> Content:
    m = row._mapping  # type: ignore[attr-defined]
    return Content(
        id=m["id"],
        creator_id=m["creator_id"],
        title=m["title"],
        price=Money(m["price"], m["currency"]),
        created_at=m["created_at"],
        body=m["body"],
    )


async def content_app(session: AsyncSession, content_id: int) -> str | None:
    """The app of the content's creator (None: no such content)."""
    app_id = await session.scalar(
        text("SELECT u.app_id FROM content c JOIN users u ON u.id = c.creator_id WHERE c.id = :id"),
        {"id": content_id},
    )
    return str(app_id) if app_id is not None else None
