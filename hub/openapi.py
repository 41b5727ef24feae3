"""The OpenAPI 3.1 document of the HTTP API, served at /openapi.json, generated from the route
table (hub/api.py).

Each endpoint says what it does where it is written (`@operation`: its summary, answers, body
model, query parameters); the route table says where it is served and who may call it
(hub.guard). The document reads both: paths and methods from the table, path parameters from
the path, security and its 401/403 from the access declared, request bodies from the same
pydantic models the routes validate with, the success answer's body from its model in
hub.responses. So it cannot drift from what the server accepts, and a route without an
`@operation` is not in it (tests/hub/test_reads.py names any such route).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from hub.guard import Access

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "examples": ["insufficient_funds"]},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Scoped to the caller; the same key and request replays the saved response "
    "(Idempotent-Replayed: true); another request with it is 422; still in flight is 409.",
}
AUTH = {"401": "Missing, malformed, wrongly signed or expired token"}
BODY = {"400": "The body is not a JSON object", "422": "Invalid input; `param` names the field"}
KEYED = {
    "400": "No Idempotency-Key (or over 255 characters)",
    "409": "idempotency_in_flight: the first request with this key is still running",
    "422": "idempotency_key_reused with another request, or invalid input (`param`)",
}
LIMITED = {"429": "rate_limited (Retry-After and RateLimit-* headers)"}


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    responses: dict[str, str]
    body: type[BaseModel] | None = None
    idempotent: bool = False
    limited: bool = False
    params: tuple[dict[str, Any], ...] = ()
    security: list[dict[str, list[str]]] | None = None  # an open route's own (the metrics token)
    returns: dict[str, type[BaseModel]] = field(default_factory=dict)  # status → its body's model


F = TypeVar("F", bound=Callable[..., Any])


def operation(
    summary: str,
    responses: dict[str, str],
    *,
    body: type[BaseModel] | None = None,
    idempotent: bool = False,
    limited: bool = False,
    params: list[dict[str, Any]] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    returns: type[BaseModel] | dict[str, type[BaseModel]] | None = None,
) -> Callable[[F], F]:
    """What an endpoint does, for the document: `summary`, its answers by status code (the
    route table's access adds 401/403, `body` 400/422, `idempotent` the Idempotency-Key header
    and its answers, `limited` 429), the pydantic model of its JSON body, its query
    parameters (path parameters come from the route's path), and `returns`: the model
    (hub.responses) of the body of its success answer (the lowest 2xx of `responses`), or
    the models by status of an endpoint with more than one (a wallet's 201, a card's 202)."""
    if returns is None:
        models: dict[str, type[BaseModel]] = {}
    elif isinstance(returns, dict):
        models = returns
    else:
        models = {min(code for code in responses if code.startswith("2")): returns}
    assert set(models) <= set(responses), f"{summary}: a model for a status it does not answer"
    described = Operation(
        summary, responses, body, idempotent, limited, tuple(params or ()), security, models
    )

    def mark(endpoint: F) -> F:
        endpoint.operation = described  # type: ignore[attr-defined]
        return endpoint

    return mark


def operation_of(endpoint: Any) -> Operation | None:
    found: Operation | None = getattr(getattr(endpoint, "__wrapped__", endpoint), "operation", None)
    return found


ID = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}

# Path parameters that are ids a person or a platform chose (text); every other one names a
# row by its bigint id.
TEXT_PARAMS = frozenset({"user_id", "creator_id", "provider", "app_id"})

# Models nested in request bodies and the response models with theirs, by name: pydantic's
# $defs, moved to components.schemas (a `#/$defs/...` reference inside a path's schema resolves
# against the document, not the body).
_NESTED: dict[str, Any] = {}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, nested in schema.pop("$defs", {}).items():
        _component(name, nested)
    return schema


def response_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A reference to `model` in components.schemas, where it and the models it nests land."""
    _component(model.__name__, body_schema(model))
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _component(name: str, schema: dict[str, Any]) -> None:
    # Components are one namespace: two models of one name would make one reference mean both.
    if _NESTED.setdefault(name, schema) != schema:
        raise ValueError(f"two schemas named {name} in the OpenAPI document")


def query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


PAGE = [
    query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size (default 20)"),
    query("before", ID, "The next_cursor of the previous page"),
]

_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"} if name in TEXT_PARAMS else ID,
        }
        for name in re.findall(r"{(\w+)(?::\w+)?}", path)
    ]


def _render(path: str, described: Operation, access: Access | None) -> dict[str, Any]:
    guarded = access is not None and not access.public
    common = {
        **(AUTH if guarded or described.security is not None else {}),
        **(BODY if described.body is not None else {}),
        **(KEYED if described.idempotent else {}),
        **(LIMITED if described.limited else {}),
    }
    op: dict[str, Any] = {"summary": described.summary, "responses": {}}
    for code, text in sorted({**common, **described.responses}.items()):
        response: dict[str, Any] = {"description": text}
        if code.startswith(("4", "5")):
            response["content"] = _ERROR_BODY
        elif code in described.returns:
            response["content"] = {
                "application/json": {"schema": response_schema(described.returns[code])}
            }
        op["responses"][code] = response
    parameters = [*_path_params(path), *described.params]
    if described.idempotent:
        parameters.append(IDEMPOTENCY)
    if parameters:
        op["parameters"] = parameters
    if described.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema(described.body)}},
        }
    if access is None or access.public:
        op["security"] = described.security if described.security is not None else []
    else:
        _secure(op, access)
    return op


def _secure(op: dict[str, Any], access: Access) -> None:
    """An operation's security, and its 401 and 403, from what the route table declares
    (hub.guard): the document cannot say a route takes a token when it takes a key."""
    schemes: list[dict[str, list[str]]] = []
    if access.users:
        schemes.append({"bearer": []})
    if access.scope is not None:
        schemes.append({"apiKey": []})
    op["security"] = schemes
    if access.scope is not None and not access.users:
        op["description"] = (
            f"API key with the `{access.scope.value}` scope (Authorization: Bearer hk_...)."
        )
    op["responses"].setdefault(
        "401", {"description": "No credential, or one that is not valid", "content": _ERROR_BODY}
    )
    if access.roles or access.scope is not None:
        wanted = []
        if access.roles:
            wanted.append(f"the {' or '.join(r.value for r in access.roles)} role")
        if access.scope is not None:
            wanted.append(f"an API key with `{access.scope.value}`")
        op["responses"].setdefault(
            "403",
            {
                "description": f"forbidden: this needs {' or '.join(wanted)}",
                "content": _ERROR_BODY,
            },
        )


@cache
def openapi_document() -> dict[str, Any]:
    from hub.api import ROUTES
    from hub.guard import access_of

    paths: dict[str, Any] = {}
    for route in ROUTES:
        described = operation_of(route.endpoint)
        if described is None:
            continue
        for method in sorted(set(route.methods or ()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _render(
                route.path, described, access_of(route.endpoint)
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hub",
            "version": "1",
            "description": "Real-time payments and notifications for creator platforms. Amounts "
            "are integers in minor units with an ISO 4217 currency.",
        },
        "components": {
            "schemas": {"Error": ERROR, **_NESTED},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An app's API key (hk_...): `hub apps keys APP create`",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "HUB_METRICS_TOKEN, when the node has one",
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
