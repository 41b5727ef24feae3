"""The platform-fee rule, as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import platform_fee

amounts = st.integers(min_value=0, max_value=2**53)
rates = st.integers(min_value=0, max_value=10_000)


@given(amounts, rates)
def test_fee_never_exceeds_the_rate_and_loses_less_than_a_unit(amount: int, bps: int) -> None:
    fee = platform_fee(amount, bps)
    assert 0 <= fee <= amount
    assert fee * 10_000 <= amount * bps < (fee + 1) * 10_000


@given(amounts, amounts, rates)
def test_fee_grows_with_the_amount(a: int, b: int, bps: int) -> None:
    low, high = sorted((a, b))
    assert platform_fee(low, bps) <= platform_fee(high, bps)


def test_examples() -> None:
    assert platform_fee(12_345, 1000) == 1234  # 1234.5 rounds down: the half unit stays
    assert platform_fee(1, 250) == 0
    assert platform_fee(10_000, 10_000) == 10_000


@pytest.mark.parametrize(("amount", "bps"), [(-1, 100), (100, -1), (100, 10_001)])
def test_out_of_range_is_refused(amount: int, bps: int) -> None:
    with pytest.raises(ValueError):
        platform_fee(amount, bps)
