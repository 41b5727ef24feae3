"""JSON text from strangers, parsed within limits: nesting, number of values, number length, and
no NaN or Infinity.

The standard library's parser is fast and safe with memory, but what it parses is a stranger's
choice: a body nested 100,000 deep ends in RecursionError, a 5,000-digit number in a ValueError
from int(), `NaN` is accepted, and 256 KiB of `[[[1]]],` builds 130,000 lists (25 ms of a
node's loop). So the bytes are measured first, at the speed of C (bytes.count, bytes.translate,
substring search): values counted, numbers and nesting measured outside strings. Only text
within every limit is parsed, with no Python callback per number. Anything else is refused as
JsonRefused, whose message says what was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class JsonRefused(ValueError):
    """The text is not JSON, or is JSON beyond the limits."""


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_depth: int = 32
    max_number_length: int = 40
    max_values: int = 10_000


def _shape_table() -> bytes:
    """Every byte to its kind: the characters of a number to `9`, `e` and `+` (an exponent's
    letter and sign), everything else to a space."""
    table = bytearray(b" " * 256)
    for byte in b"0123456789.":
        table[byte] = ord("9")
    for byte in b"eE":
        table[byte] = ord("e")
    for byte in b"+-":
        table[byte] = ord("+")
    return bytes(table)


_SHAPE = _shape_table()
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_LEAF = re.compile(rb"\[\]|\{\}")  # an innermost array or object, its contents removed


def loads(raw: bytes, limits: JsonLimits) -> Any:
    """`raw` (UTF-8, as RFC 8259 has it) parsed, or JsonRefused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8") from None
    # Over the whole text, strings included, the measures can only overstate: a body found
    # within every limit (almost every body) is parsed at once; any other is measured again
    # outside its strings, and refused only then.
    if _beyond(raw, limits) is not None:
        problem = _beyond(_outside_strings(raw), limits, exact=True)
        if problem is not None:
            raise JsonRefused(problem)
    try:
        return json.loads(text, parse_constant=_constant)
    except JsonRefused:
        raise
    except (ValueError, RecursionError):  # JSONDecodeError; RecursionError if unbalanced
        raise JsonRefused("not valid JSON") from None


def _beyond(text: bytes, limits: JsonLimits, *, exact: bool = False) -> str | None:
    """What limit `text` passes, or None. With strings still in `text` this overstates (a
    string may hold brackets, commas, digits); `exact` measures the nesting too."""
    brackets = text.count(b"[") + text.count(b"{")
    if brackets + text.count(b",") >= limits.max_values:
        return f"more than {limits.max_values} values"
    shape = text.translate(_SHAPE)
    if b"9" * (limits.max_number_length + 1) in shape:
        return f"a number is longer than {limits.max_number_length} characters"
    if b"e999" in shape or b"e+999" in shape:  # an exponent of three digits or more
        return "a number is out of range"
    if brackets > limits.max_depth and (not exact or _deeper(text, limits.max_depth)):
        return f"nested deeper than {limits.max_depth}"
    return None


def _outside_strings(text: bytes) -> bytes:
    """`text` with every string blanked to `""`: its structure and scalars."""
    if b'\\"' not in text:  # no escaped quote: the quotes alone delimit the strings
        return b'""'.join(text.split(b'"')[::2])
    return _STRING.sub(b'""', text)


def _deeper(skeleton: bytes, depth: int) -> bool:
    """Whether arrays and objects nest deeper than `depth` in `skeleton` (strings blanked).
    Each pass removes the innermost ones, all in one scan of what the last pass left."""
    brackets = skeleton.translate(None, _NOT_BRACKETS)
    for _ in range(depth):
        if not brackets:
            return False
        inner = _LEAF.sub(b"", brackets)
        if len(inner) == len(brackets):  # unbalanced or crossed: the parser refuses it
            return False
        brackets = inner
    return bool(brackets)


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON")
