"""Accounts: per owner, kind and currency; users are learnt from their tokens."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Text, bindparam, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import UnknownAccount
from ledger.schema import accounts, users


class Role(StrEnum):
    FAN = "fan"
    CREATOR = "creator"
    ADMIN = "admin"


class Kind(StrEnum):
    WALLET = "wallet"  # a user's spendable money; never negative
    EARNINGS = "earnings"  # a creator's income from tips; never negative
    PLATFORM_FEE = "platform_fee"  # the platform's revenue (no owner)
    # What a provider collected for us (negative: it owes us) or paid out; one per provider.
    PROVIDER_CLEARING = "provider_clearing"
    DEV_FUNDING = "dev_funding"  # development-only source of demo money; may go negative


MAY_GO_NEGATIVE = {Kind.DEV_FUNDING, Kind.PROVIDER_CLEARING}
DEFAULT_APP = "default"  # the app of a deployment configured by its settings alone


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    owner_id: str | None
    kind: str
    currency: str
    balance: int  # posted
    version: int
    held: int = 0  # pending holds

    @property
    def available(self) -> int:
        return self.balance - self.held

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "currency": self.currency,
            "balance": self.balance,
            "held": self.held,
            "available": self.available,
            "version": self.version,
        }


def _kinds_for(role: Role) -> list[Kind]:
    return [Kind.WALLET, Kind.EARNINGS] if role is Role.CREATOR else [Kind.WALLET]


async def user_is_current(
    session: AsyncSession,
    user_id: str,
    role: Role,
    currencies: tuple[str, ...],
    display_name: str | None = None,
    email: str | None = None,
    app_id: str = DEFAULT_APP,
) -> bool:
    """Whether `ensure_user` would change nothing: one read, so that a known user's connect or
    request writes nothing (a socket reconnect storm after a restart is mostly known users).
    """
    row = (
        await session.execute(
            select(users.c.role, users.c.display_name, users.c.email, func.count(accounts.c.id))
            .select_from(
                users.outerjoin(
                    accounts,
                    (accounts.c.owner_id == users.c.id)
                    & accounts.c.kind.in_([kind.value for kind in _kinds_for(role)])
                    & accounts.c.currency.in_(currencies),
                )
            )
            .where(users.c.id == user_id, users.c.app_id == app_id)
            .group_by(users.c.id)
        )
    ).first()
    if row is None:
        return False
    known_role, known_name, known_email, account_count = row
    return bool(
        (role is not Role.CREATOR or known_role == Role.CREATOR.value)
        and (display_name is None or display_name == known_name)
        and (email is None or email == known_email)
        and account_count >= len(_kinds_for(role)) * len(currencies)
    )


async def ensure_user(
    session: AsyncSession,
    user_id: str,
    role: Role,
    currencies: tuple[str, ...],
    display_name: str | None = None,
    email: str | None = None,
    app_id: str = DEFAULT_APP,
) -> None:
    """Create the user and their accounts on first sight; later calls change nothing.

    A creator gets earnings accounts; anyone may hold a wallet. A user first seen as a fan who
    later presents a creator token gains earnings accounts then. `user_id` is the stored id
    (ledger.ids), which names its app: the table refuses one that is not of `app_id`
    (users_id_of_app).
    """
    values = {
        "id": user_id,
        "role": role.value,
        "display_name": display_name,
        "email": email,
        "app_id": app_id,
    }
    upsert = insert(users).values(**values)
    known = {k: v for k, v in (("display_name", display_name), ("email", email)) if v is not None}
    if not known:
        await session.execute(upsert.on_conflict_do_nothing())
    else:
        changed = [users.c[k].is_distinct_from(v) for k, v in known.items()]
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=[users.c.id],
                set_=known,
                where=or_(*changed),
            )
        )
    if role is Role.CREATOR:
        await session.execute(
            users.update()
            .where(users.c.id == user_id, users.c.role == Role.FAN.value)
            .values(role=Role.CREATOR.value)
        )
    rows = [
        {"owner_id": user_id, "kind": kind.value, "currency": currency}
        for kind in _kinds_for(role)
        for currency in currencies
    ]
    await session.execute(insert(accounts).values(rows).on_conflict_do_nothing())


# Plain SQL on the money paths: nothing for SQLAlchemy to key and compile per request.
_SYSTEM_ACCOUNT = text(
    """
    SELECT id FROM accounts
    WHERE owner_id IS NULL AND kind = :kind AND currency = :currency
      AND provider IS NOT DISTINCT FROM :provider
    """
).bindparams(bindparam("provider", type_=Text))

_FIND_ACCOUNT = text(
    f"SELECT {', '.join(accounts.c.keys())} FROM accounts "
    "WHERE owner_id = :owner_id AND kind = :kind AND currency = :currency"
).columns(*accounts.c)


async def ensure_system_account(
    session: AsyncSession, kind: Kind, currency: str, provider: str | None = None
) -> int:
    """The id of the owner-less account of `kind` in `currency` (and `provider`, for clearing
    accounts), created if missing."""
    where = (
        accounts.c.owner_id.is_(None),
        accounts.c.kind == kind.value,
        accounts.c.currency == currency,
        accounts.c.provider.is_(None) if provider is None else accounts.c.provider == provider,
    )
    account_id = await session.scalar(
        _SYSTEM_ACCOUNT, {"kind": kind.value, "currency": currency, "provider": provider}
    )
    if account_id is not None:
        return int(account_id)
    await session.execute(
        insert(accounts)
        .values(
            owner_id=None,
            kind=kind.value,
            currency=currency,
            provider=provider,
            may_go_negative=kind in MAY_GO_NEGATIVE,
        )
        .on_conflict_do_nothing()
    )
    account_id = await session.scalar(select(accounts.c.id).where(*where))
    assert account_id is not None
    return int(account_id)


async def find_account(session: AsyncSession, owner_id: str, kind: Kind, currency: str) -> Account:
    row = (
        await session.execute(
            _FIND_ACCOUNT, {"owner_id": owner_id, "kind": kind.value, "currency": currency}
        )
    ).one_or_none()
    if row is None:
        raise UnknownAccount(f"no {kind.value} account in {currency} for {owner_id}")
    return _account(row)


async def balances(session: AsyncSession, owner_id: str) -> list[Account]:
    rows = await session.execute(
        select(accounts)
        .where(accounts.c.owner_id == owner_id)
        .order_by(accounts.c.kind, accounts.c.currency)
    )
    return [_account(row) for row in rows]


async def display_name(session: AsyncSession, user_id: str) -> str | None:
    name = await session.scalar(select(users.c.display_name).where(users.c.id == user_id))
    return str(name) if name is not None else None


async def user_role(session: AsyncSession, user_id: str) -> Role | None:
    role = await session.scalar(select(users.c.role).where(users.c.id == user_id))
    return Role(role) if role is not None else None


def _account(row: object) -> Account:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Account(
        id=mapping["id"],
        owner_id=mapping["owner_id"],
        kind=mapping["kind"],
        currency=mapping["currency"],
        balance=mapping["balance"],
        version=mapping["version"],
        held=mapping["held"],
    )
