"""Token exchange: email and password in, a bearer token out."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import BadRequest, Unauthorized
from werkzeug.wrappers import Response

from studio.api import bp
from studio.auth import devices
from studio.auth.service import AccountError, authenticate, create_api_token
from studio.security import auth_limit


@bp.post("/tokens")
@auth_limit
def create_token() -> tuple[Response, int]:
    """Create an API token for the account whose email and password are given.
    ---
    post:
      operationId: createToken
      summary: Exchange an email and password for an API token
      security: []
      requestBody:
        required: true
        content: {application/json: {schema: TokenRequest}}
      responses:
        "201": {description: The new token, content: {application/json: {schema: Token}}}
        "400": BadRequest
        "401":
          description: Wrong email or password
          content: {application/json: {schema: Error}}
        "429": TooManyRequests
        "503": Unavailable
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("email"), str) \
            or not isinstance(body.get("password"), str):
        raise BadRequest('Send JSON like {"email": "you@example.com", "password": "..."}.')
    name = body.get("name", "api")
    if not isinstance(name, str):
        raise BadRequest("name must be a string.")
    if any("\x00" in value for value in (body["email"], body["password"], name)):
        # PostgreSQL cannot even compare text holding NUL: refuse it here rather than fail in the query.
        raise BadRequest("email, password and name must not contain NUL characters.")
    user = authenticate(body["email"], body["password"])
    if user is None:
        raise Unauthorized("The email or password is not correct.")
    try:
        token, plaintext = create_api_token(user, name)
    except AccountError as error:
        raise BadRequest(error.message) from None
    devices.remember(user.email)
    return jsonify(token=plaintext, name=token.name, prefix=token.prefix), 201
