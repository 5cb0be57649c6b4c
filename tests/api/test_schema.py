"""Property-based run against the OpenAPI schema: no server errors, no schema violations."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cryptobot_api.main import create_app
from tests.api.conftest import Filled


@pytest.fixture(scope="session")
def api_schema(filled: Filled) -> schemathesis.BaseSchema:
    """The app's own OpenAPI schema, loaded over ASGI (its lifespan runs)."""
    app: FastAPI = create_app(filled.settings)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# The SSE endpoint never ends by design; test_live covers it over a real socket.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/stream/{symbol}")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    # Every check but positive_data_acceptance: a schema cannot say that a cursor must come
    # from a previous page, that a time string must be a real date, or that start < end;
    # those are 422 by design and tests/api/test_endpoints.py pins their messages.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
