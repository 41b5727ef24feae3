"""The money: accounts, transfers, entries, tips, idempotency and the event log.

Imports nothing else of the repository and never reads the environment: callers pass a database
session and plain values. Services never commit; the caller's unit of work does.
"""
