"""JSON text from strangers, parsed within limits: depth, number length, no NaN or Infinity.

The standard library's parser is fast and safe with memory, but a body nested 100,000 deep ends
in RecursionError, a 5,000-digit number in a ValueError from int(), and `NaN` is accepted. Each
of those is refused here as JsonRefused, whose message says what was wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


class JsonRefused(ValueError):
    """The text is not JSON, or is JSON beyond the limits."""


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_depth: int = 32
    max_number_length: int = 40


def loads(text: bytes | str, limits: JsonLimits) -> Any:
    def number(digits: str) -> str:
        if len(digits) > limits.max_number_length:
            raise JsonRefused(f"a number is longer than {limits.max_number_length} characters")
        return digits

    def to_float(digits: str) -> float:
        value = float(number(digits))
        if not math.isfinite(value):
            raise JsonRefused(f"the number {digits[:20]} is out of range")
        return value

    def constant(name: str) -> Any:
        raise JsonRefused(f"{name} is not JSON")

    try:
        value = json.loads(
            text,
            parse_int=lambda digits: int(number(digits)),
            parse_float=to_float,
            parse_constant=constant,
        )
    except RecursionError:
        raise JsonRefused(f"nested deeper than {limits.max_depth}") from None
    except JsonRefused:
        raise
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise JsonRefused("not valid JSON") from None
    # Nesting needs brackets: counting them (in C) spares almost every body the walk below.
    brackets = (
        text.count(b"[") + text.count(b"{")
        if isinstance(text, bytes)
        else text.count("[") + text.count("{")
    )
    if brackets > limits.max_depth and depth(value) > limits.max_depth:
        raise JsonRefused(f"nested deeper than {limits.max_depth}")
    return value


def depth(value: Any) -> int:
    """How deep arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
