"""Money as integer minor units with a currency, and the platform-fee rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Money:
    amount: int  # minor units (kobo, cents); never a float
    currency: str  # ISO 4217

    def as_json(self) -> dict[str, int | str]:
        return {"amount": self.amount, "currency": self.currency}


def platform_fee(amount: int, fee_bps: int) -> int:
    """The platform's share of `amount`, in basis points, rounded down to the minor unit.

    Rounding rule: the fee is floor(amount * bps / 10000); the remainder, including any
    fraction of a minor unit, goes to the creator. So fee + net == amount always, the fee never
    exceeds the advertised rate, and a 1-unit tip at any rate below 100 % carries no fee.
    """
    if amount < 0 or not 0 <= fee_bps <= 10_000:
        raise ValueError("amount must be >= 0 and fee_bps within 0..10000")
    return amount * fee_bps // 10_000
