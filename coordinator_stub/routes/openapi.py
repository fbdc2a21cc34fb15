"""The OpenAPI document, made truthful about error bodies.

FastAPI documents every 422 as `HTTPValidationError` (`detail` a list of field errors). The
coordinator also answers 422 for a rule on a well-formed value (`UnprocessableError`, e.g. a stake
below the minimum), with the house error body `{"detail": "<sentence>"}`. The schema
says so, so clients and the schemathesis run can rely on it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with a cached generator that allows both 422 bodies."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            validation = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if validation is not None:
                detail = validation["properties"]["detail"]
                validation["properties"]["detail"] = {
                    "title": detail.get("title", "Detail"),
                    "anyOf": [
                        {k: v for k, v in detail.items() if k != "title"},
                        {"type": "string", "description": "a rule on a well-formed value"},
                    ],
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
