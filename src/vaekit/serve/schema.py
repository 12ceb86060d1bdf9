"""The explorer's OpenAPI schema says every answer it can give: clients are generated from it, and
Schemathesis holds the server to it (tests/serve/test_schema_fuzz.py).

FastAPI documents a 200 and its own 422 (a list of validation errors). The explorer also refuses
requests it parses but cannot serve, with ``{"detail": "one line"}``: 400 (a bad upload), 401 (no
token), 404 (no such run or image), 413 (too large), 415 (not an image) and 422 (values that do not fit
the run: a z of the wrong length, a label it lacks). Each operation documents them all; its 422 is
either form.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERRORS = {
    400: "the request cannot be read (a malformed upload)",
    401: "this server has a token and the request does not carry it",
    404: "no such run, image or path",
    413: "the request or its image is too large",
    415: "the upload is not an image",
    422: "the request does not fit the run (or FastAPI's validation errors)",
}
DETAIL = {
    "title": "ErrorDetail",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` document ``ERRORS`` on every operation (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = DETAIL
            detail = {"$ref": "#/components/schemas/ErrorDetail"}
            for operations in schema["paths"].values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    for status, meaning in ERRORS.items():
                        own = responses.get(str(status), {}).get("content", {}).get("application/json", {})
                        body = {"anyOf": [own["schema"], detail]} if "schema" in own else detail
                        responses[str(status)] = {
                            "description": meaning,
                            "content": {"application/json": {"schema": body}},
                        }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
