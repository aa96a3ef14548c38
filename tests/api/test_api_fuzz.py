"""Schemathesis throws generated requests, valid and invalid, at every operation of /api/v1/openapi.json:
never a 5xx, and every answer is one the document describes (status, content type, body schema, headers)."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis import checks

from ml.registry import MODELS
from studio import create_app
from studio.api import document
from studio.tasks import service

pytestmark = pytest.mark.integration

# Per operation and per mode (valid, then invalid requests): enough to find crashes, well within CI's budget.
MAX_EXAMPLES = int(__import__("os").environ.get("FUZZ_N", 40))

# The operations are listed from a document generated for an app that never connects, so the tests can be collected
# without a database; each test then loads the document the app serves at /api/v1/openapi.json.
# (schemathesis.pytest.from_fixture would do both, but fails under pytest 9 in schemathesis 4.32: it sets
# node._nodeid, which pytest 9 removed.)
DOCUMENT = document.build(create_app({"TESTING": True, "SECRET_KEY": "collection",
                                      "SQLALCHEMY_DATABASE_URI": "sqlite://"}))
OPERATIONS = {f"{operation.method.upper()} {operation.path}": operation for operation in
              (result.ok() for result in schemathesis.openapi.from_dict(DOCUMENT).get_all_operations())}
# A schema cannot say which bytes are a photo, so a "schema-valid" upload of random bytes is rightly refused.
EXCLUDED_CHECKS = [checks.positive_data_acceptance]


@pytest.fixture
def fuzzed_app(make_app, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """Return the app with rate limits off (every request must reach the code) and a model said to be present."""
    # Uploads that pass every check are queued, never processed: the weights themselves are not needed.
    # Every model, so an upload by URL (a text field the fuzzer can fill) of any operation gets past the options.
    monkeypatch.setattr(service, "installed_models", lambda: tuple(MODELS))
    app = make_app(RATELIMIT_ENABLED=False)
    return app


@pytest.fixture
def bearer(fuzzed_app: Flask, make_user, make_token) -> dict[str, str]:
    """Return a valid token's Authorization header, so the fuzzing gets past authentication."""
    return make_token(make_user())


def test_every_operation_is_fuzzed():
    assert len(OPERATIONS) == sum(len(item) for item in DOCUMENT["paths"].values()) >= 13


CASES = [(label, mode) for label, operation in OPERATIONS.items()
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         # Without parameters or a body there is nothing to make invalid.
         if mode is GenerationMode.POSITIVE or operation.path_parameters or operation.query or operation.body]


@pytest.mark.parametrize("label, mode", CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_no_request_yields_a_server_error_or_breaks_the_document(label, mode, fuzzed_app, bearer):
    # Loaded through the app: requests go straight to it (WSGI), those the checks make by themselves too.
    served = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app)
    # Unknown query parameters are ignored, as most APIs do (a cache-busting "_=123" must not break a client).
    served.config.generation.update(allow_extra_parameters=False)
    operation = served[OPERATIONS[label].path][OPERATIONS[label].method.upper()]

    @given(case=operation.as_strategy(generation_mode=mode), authorised=st.booleans())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def fuzz(case, authorised: bool) -> None:
        response = case.call_and_validate(headers=bearer if authorised else None,
                                          additional_checks=[checks.not_a_server_error],
                                          excluded_checks=EXCLUDED_CHECKS)
        # Said twice on purpose: schemathesis's not_a_server_error is among the checks above, whatever its defaults.
        assert response.status_code < 500, (response.status_code, response.text[:500])

    fuzz()
