"""`ledger/schema.py`, which the SQLAlchemy statements are built from, describes the database
the migrations make: same tables, columns, types, nullability, keys, indexes and constraints
(Alembic's own comparison, as `alembic revision --autogenerate` would run it)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.schema import metadata


def _ours(name: str | None, type_: str, parent: Any) -> bool:
    return not (type_ == "table" and name == "alembic_version")


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": _ours}
    )
    return list(compare_metadata(context, metadata))


async def test_schema_py_and_the_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == [], "\n".join(map(str, differences))
