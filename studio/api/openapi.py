"""The OpenAPI 3.1 description of the API, served at /api/v1/openapi.json (kept true by tests/service)."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from werkzeug.wrappers import Response

from ml.options import FORMATS, MAX_BLUR, MAX_MARGIN, OUTPUTS, SIZES
from studio.api import bp
from studio.extensions import limiter
from studio.models import TaskStatus, WebhookStatus
from studio.tasks.service import MAX_PAGE, MAX_PER_PAGE


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_UNAUTHORIZED = _error("No valid bearer token")
_NOT_FOUND = _error("No such task (or another account's)")
_RATE_LIMITED = _error("Too many requests")
_UNAVAILABLE = _error("The database or the queue is unavailable")

OPTION_PROPERTIES: dict[str, Any] = {
    "model": {"type": "string", "description": "a model installed on the server (default u2netp)"},
    "output": {"type": "string", "enum": list(OUTPUTS)},
    "format": {"type": "string", "enum": list(FORMATS)},
    "bg_color": {"type": ["string", "null"], "description": "hex colour (#rgb, #rgba, #rrggbb, #rrggbbaa)"},
    "blur": {"type": "integer", "minimum": 0, "maximum": MAX_BLUR},
    "crop": {"type": "boolean"},
    "margin": {"type": "integer", "minimum": 0, "maximum": MAX_MARGIN},
    "post_process": {"type": "boolean",
                     "description": "clean the mask as rembg's post_process_mask does (no specks, hard edges)"},
    "size": {"type": "string", "enum": list(SIZES),
             "description": "output size preset: full resolution, or at most 10, 4, 1.5 or 0.25 megapixels"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {"status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}},
        }},
    },
    "TokenRequest": {
        "type": "object",
        "required": ["email", "password"],
        "properties": {"email": {"type": "string"}, "password": {"type": "string"},
                       "name": {"type": "string", "maxLength": 100}},
    },
    "Token": {
        "type": "object",
        "required": ["token", "name", "prefix"],
        "additionalProperties": False,
        "properties": {"token": {"type": "string", "description": "shown once; send as Authorization: Bearer"},
                       "name": {"type": "string"}, "prefix": {"type": "string"}},
    },
    "Options": {"type": "object", "additionalProperties": False, "properties": {
        **OPTION_PROPERTIES,
        "bg_image": {"type": "boolean", "description": "true when a background image was uploaded with the photo"},
    }},
    "Task": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "status", "progress", "error", "model", "options", "original_filename", "created_at",
                     "started_at", "finished_at", "attempts", "result_url", "webhook"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": [status.value for status in TaskStatus]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "error": {"type": ["string", "null"]},
            "model": {"type": "string"},
            "options": {"$ref": "#/components/schemas/Options"},
            "original_filename": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "attempts": {"type": "integer", "minimum": 0},
            "result_url": {"type": ["string", "null"], "format": "uri"},
            "webhook": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Webhook"}]},
        },
    },
    "Webhook": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "status", "attempts", "last_response", "delivered_at"],
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "status": {"type": "string", "enum": [status.value for status in WebhookStatus]},
            "attempts": {"type": "integer", "minimum": 0},
            "last_response": {"type": ["string", "null"], "description": "e.g. HTTP 200, or why there was none"},
            "delivered_at": _NULLABLE_TIME,
        },
    },
    "WebhookSecret": {
        "type": "object",
        "additionalProperties": False,
        "required": ["secret"],
        "properties": {"secret": {"type": ["string", "null"],
                                  "description": "whsec_...: verifies the webhook-signature header"}},
    },
    "TaskList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "page", "per_page", "total", "pages"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
            "pages": {"type": "integer", "minimum": 0},
        },
    },
}

PATHS: dict[str, Any] = {
    "/tokens": {"post": {
        "operationId": "createToken",
        "summary": "Exchange an email and password for an API token",
        "security": [],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
        "responses": {"201": _json("The new token", "Token"), "400": _error("Malformed request"),
                      "401": _error("Wrong email or password"), "429": _RATE_LIMITED, "503": _UNAVAILABLE},
    }},
    "/tasks": {
        "post": {
            "operationId": "createTask",
            "summary": "Upload a photo and queue its processing",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "contentMediaType": "application/octet-stream",
                                         "description": "a still JPEG, PNG or WebP photo; it is stored "
                                                        "re-encoded, upright, without EXIF or GPS"},
                               **OPTION_PROPERTIES,
                               "bg_image": {"type": "string", "contentMediaType": "application/octet-stream",
                                            "description": "a JPEG, PNG or WebP image to put behind the cutout "
                                                           "(scaled and cropped to cover it); not with bg_color "
                                                           "or blur"},
                               "webhook_url": {"type": "string", "format": "uri", "maxLength": 2048,
                                               "description": "called (POST, Standard Webhooks signature) once "
                                                              "the task is COMPLETED or FAILED; a public "
                                                              "http(s) URL"}},
            }}}},
            "responses": {
                "202": {**_json("The queued task", "Task"),
                        "headers": {"Location": {"description": "the task's URL", "schema": {"type": "string"}}}},
                "400": _error("Not a multipart body, no photo, an empty or damaged file, too many pixels, an "
                              "invalid, repeated or overlong option, or a webhook_url that is not a public "
                              "http(s) URL"),
                "401": _UNAUTHORIZED,
                "413": _error("The upload is larger than the limit, or the account's storage quota is full "
                              "(code quota_exceeded)"),
                "415": _error("The file is not a JPEG, PNG or WebP image, or it is animated"),
                "429": _RATE_LIMITED,
                "503": _UNAVAILABLE,
            },
        },
        "get": {
            "operationId": "listTasks",
            "summary": "List the account's tasks, newest first",
            "parameters": [
                {"name": "page", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}},
                {"name": "per_page", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}},
            ],
            "responses": {"200": _json("One page of tasks", "TaskList"),
                          "400": _error("page or per_page is not a whole number in range"),
                          "401": _UNAUTHORIZED, "429": _RATE_LIMITED, "503": _UNAVAILABLE},
        },
    },
    "/tasks/{task_id}": {
        "get": {
            "operationId": "getTask",
            "summary": "Show one task (poll it until status is COMPLETED or FAILED)",
            "parameters": [_TASK_ID],
            "responses": {"200": _json("The task", "Task"), "401": _UNAUTHORIZED, "404": _NOT_FOUND,
                          "429": _RATE_LIMITED, "503": _UNAVAILABLE},
        },
        "delete": {
            "operationId": "deleteTask",
            "summary": "Delete a task, its photo and its result",
            "parameters": [_TASK_ID],
            "responses": {"204": {"description": "Deleted"}, "401": _UNAUTHORIZED, "404": _NOT_FOUND,
                          "429": _RATE_LIMITED, "503": _UNAVAILABLE},
        },
    },
    "/tasks/{task_id}/result": {"get": {
        "operationId": "getTaskResult",
        "summary": "Fetch the result image",
        "parameters": [_TASK_ID, {"name": "download", "in": "query", "description": "1 for an attachment",
                                  "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}],
        "responses": {
            "200": {"description": "The image (local storage)",
                    "content": {media: {"schema": {"type": "string", "contentMediaType": media}}
                                for media in ("image/png", "image/webp", "image/jpeg")}},
            "302": {"description": "A short-lived presigned URL for the image (S3 storage)",
                    "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}}},
            "401": _UNAUTHORIZED,
            "404": _error("No such task, or no result yet"),
            "429": _RATE_LIMITED,
            "503": _UNAVAILABLE,
        },
    }},
    "/webhook-secret": {
        "get": {
            "operationId": "getWebhookSecret",
            "summary": "Show the secret that signs the account's webhooks (null until the first webhook)",
            "responses": {"200": _json("The secret", "WebhookSecret"), "401": _UNAUTHORIZED,
                          "429": _RATE_LIMITED, "503": _UNAVAILABLE},
        },
        "post": {
            "operationId": "rotateWebhookSecret",
            "summary": "Replace the signing secret; webhooks sent from now on use the new one",
            "responses": {"201": _json("The new secret", "WebhookSecret"), "401": _UNAUTHORIZED,
                          "429": _RATE_LIMITED, "503": _UNAVAILABLE},
        },
    },
    "/openapi.json": {"get": {
        "operationId": "getOpenApiDocument",
        "summary": "This document",
        "security": [],
        "responses": {"200": {"description": "The OpenAPI document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Photo Studio API",
        "version": "1.0.0",
        "description": "Background removal as a service. Get a token with POST /tokens, upload with POST /tasks, "
                       "poll GET /tasks/{task_id} and fetch result_url when the task is COMPLETED.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
}


@bp.get("/openapi.json")
@limiter.exempt
def openapi_document() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(DOCUMENT)
