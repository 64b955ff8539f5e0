"""The OpenAPI document, shaped like ai-runner's `openapi.yaml` (go-livepeer's client is generated from it):
the route's error bodies, the multipart body as `Body_<operationId>` with binary file parts, bearer auth."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from . import schemas
from .routes import Route

REASONS = {400: "Bad Request", 401: "Unauthorized", 413: "Request Entity Too Large",
           415: "Unsupported Media Type", 422: "Validation Error", 500: "Internal Server Error"}


def error_responses(route: Route) -> dict[int | str, dict[str, Any]]:
    """The route's documented error statuses: FastAPI's list for 422, HTTPError for the rest."""
    return {status: {"model": schemas.HTTPValidationError if status == 422 else schemas.HTTPError,
                     "description": REASONS.get(status, "Error")} for status in route.error_statuses}


def request_body(route: Route) -> dict[str, Any]:
    """The operation's requestBody, referring to the component `document` adds."""
    if route.multipart:
        media, name = "multipart/form-data", route.body_schema_name
    else:
        media, name = "application/json", route.request_model.__name__
    return {"content": {media: {"schema": {"$ref": f"#/components/schemas/{name}"}}}, "required": True}


def document(app: FastAPI, route: Route) -> dict[str, Any]:
    """Build (once) and return the app's OpenAPI document."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    found = components.setdefault("schemas", {})
    models = [schemas.HTTPError, schemas.HTTPValidationError, route.response_model]
    if not route.multipart:
        models.append(route.request_model)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    found.update(defs.get("$defs", {}))
    if route.multipart:
        body = route.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
        # File parts first, binary, required; then the text parts (FastAPI's order for File + Form params).
        props: dict[str, Any] = {p: {"type": "string", "format": "binary", "title": p.title()}
                                 for p in route.file_parts}
        props.update({k: v for k, v in body.get("properties", {}).items() if k not in props})
        found[route.body_schema_name] = {"properties": props, "type": "object",
                                         "required": list(route.file_parts), "title": route.body_schema_name}
    components["securitySchemes"] = {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
    app.openapi_schema = doc
    return doc
