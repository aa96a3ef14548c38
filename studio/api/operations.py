"""What the studio can do: every operation with its models (installed or not, and why), options and outputs; and
the OpenAPI document of this API."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from ml.operations import OPERATIONS, Operation, UnknownOperation, get_operation
from ml.registry import MODELS, model_state
from studio.api import bp, document
from studio.security import read_limit
from studio.extensions import limiter

_DOCUMENT_KEY = "studio.openapi"


def describe(operation: Operation) -> dict[str, Any]:
    """Return what GET /operations says of one operation."""
    config = current_app.config
    states = [model_state(MODELS[name], config["STUDIO_MODEL_DIR"]) for name in operation.models if name in MODELS]
    available = [state.spec.name for state in states if state.available]
    default = config["STUDIO_DEFAULT_MODEL"] if config["STUDIO_DEFAULT_MODEL"] in available else \
        (available[0] if available else None)
    return {
        "name": operation.name,
        "title": operation.title,
        "description": operation.description,
        "models": [{"name": state.spec.name, "title": state.spec.title, "available": state.available,
                    "reason": state.reason, "default": state.spec.name == default} for state in states],
        "options": operation.option_schema(),
        "outputs": [{"name": output.name, "kind": output.kind, "description": output.description}
                    for output in operation.outputs],
        "attachments": [{"name": attachment.name, "title": attachment.title, "description": attachment.description,
                         "required": attachment.required} for attachment in operation.attachments],
    }


@bp.get("/operations")
@read_limit
def list_operations() -> Response:
    """List the operations.
    ---
    get:
      operationId: listOperations
      summary: List every operation with its models (installed or not, and why), options (JSON Schema) and outputs
      responses:
        "200": {description: The operations, content: {application/json: {schema: OperationList}}}
        "401": Unauthorized
        "429": TooManyRequests
        "503": Unavailable
    """
    return jsonify(items=[describe(operation) for operation in OPERATIONS.values()])


@bp.get("/operations/<name>")
@read_limit
def get_operation_info(name: str) -> Response:
    """Show one operation.
    ---
    get:
      operationId: getOperation
      summary: Show one operation
      parameters: [{name: name, in: path, required: true, schema: {type: string, pattern: "^[a-z_]{1,40}$"}}]
      responses:
        "200": {description: The operation, content: {application/json: {schema: OperationInfo}}}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    try:
        return jsonify(describe(get_operation(name)))
    except UnknownOperation as error:
        raise NotFound(f"{error}.") from None


def openapi(app: Any) -> dict[str, Any]:
    """Return the app's OpenAPI document, generated once per app."""
    if _DOCUMENT_KEY not in app.extensions:
        app.extensions[_DOCUMENT_KEY] = document.build(app)
    return app.extensions[_DOCUMENT_KEY]


@bp.get("/openapi.json")
@limiter.exempt
def openapi_document() -> Response:
    """Serve this API's OpenAPI document.
    ---
    get:
      operationId: getOpenApiDocument
      summary: This document
      security: []
      responses:
        "200": {description: The OpenAPI document, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(openapi(current_app._get_current_object()))  # type: ignore[attr-defined]
