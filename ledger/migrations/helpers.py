"""Run a multi-statement SQL script through asyncpg's simple-query protocol."""

from __future__ import annotations

from typing import Any

from alembic import op


def execute_script(sql: str) -> None:
    # SQLAlchemy prepares each statement, and a prepared statement holds one command only;
    # asyncpg's execute() without arguments runs a whole script (plpgsql bodies included).
    dbapi = op.get_bind().connection.dbapi_connection
    assert dbapi is not None

    async def run(connection: Any) -> None:
        await connection.execute(sql)

    dbapi.run_async(run)
