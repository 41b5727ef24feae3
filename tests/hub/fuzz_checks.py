"""Checks that schemathesis runs beside its own (loaded through SCHEMATHESIS_HOOKS by
tests/hub/test_fuzz.py): every error answer is in the hub's error shape."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx and 5xx is JSON: {"error": {"type": str, "message": str, "param": str|null}}."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body") from None
    error = body.get("error") if isinstance(body, dict) else None
    if (
        set(body) != {"error"}
        or not isinstance(error, dict)
        or not isinstance(error.get("type"), str)
        or not isinstance(error.get("message"), str)
        or not isinstance(error.get("param"), str | None)
    ):
        raise AssertionError(f"{response.status_code} not in the error shape: {body!r}"[:500])
    return None
