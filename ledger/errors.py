"""Domain errors of the ledger, free of HTTP: hub/errors.py maps them to responses."""

from __future__ import annotations


class LedgerError(Exception):
    """An expected failure of a money command; `param` names the input at fault, if any."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InsufficientFunds(LedgerError):
    pass


class UnknownCreator(LedgerError):
    pass


class UnknownAccount(LedgerError):
    pass


class UnsupportedCurrency(LedgerError):
    pass


class InvalidTransfer(LedgerError):
    """A transfer that would break double entry: unbalanced, empty or mixed currencies."""


class DuplicateTransfer(LedgerError):
    pass


class IdempotencyKeyReused(LedgerError):
    """The key was used before with a different request."""


class IdempotencyInFlight(LedgerError):
    """A request with the same key is still being processed."""


class UnknownContent(LedgerError):
    pass


class AlreadyPurchased(LedgerError):
    pass


class UnknownPayment(LedgerError):
    pass


class UnknownPayout(LedgerError):
    pass


class RefundNotAllowed(LedgerError):
    """The payment cannot be refunded (not succeeded, or nothing left to refund)."""


class RefundExceedsPayment(LedgerError):
    pass


class Forbidden(LedgerError):
    """The caller may not do this (wrong role, or not theirs)."""


class InvalidFee(LedgerError):
    pass


class UnknownFailedJob(LedgerError):
    pass


class FailedJobAlreadyRetried(LedgerError):
    """A dead-lettered job is retried once; a retry that fails for good is a new entry."""


class FailedJobNotRetriable(LedgerError):
    """The entry names a job this release's worker does not run."""


class UnknownApp(LedgerError):
    pass


class DuplicateApp(LedgerError):
    pass


class UnknownApiKey(LedgerError):
    pass


class ApiKeyNotRotatable(LedgerError):
    """Only a live key that was not rotated yet can be rotated."""
