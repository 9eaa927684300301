"""schemathesis generates requests from contracts/openapi.yaml and checks every answer against it:
no server error, declared status codes, content types and headers, response bodies that match
their schemas, schema-violating requests refused, schema-valid requests accepted, the Allow
header on an undeclared method, ...: every check schemathesis has.

One rule is replaced, for one operation. A case that the contract accepts can still be refused
for a rule JSON Schema cannot state: the enterprise number's mod-97 check, a date in the future
(judged by the hub's clock), or the agencies' admissibility questions (`needs-answers`,
`not-admissible`). For POST /api/v1/cases the stock "schema-valid data is accepted" check is
therefore replaced by a stricter one of our own: a schema-valid case is filed (201), or refused
with a 422 whose every error names one of those rules' fields. Anything else fails.

Bounded by LOKET_FUZZ_EXAMPLES (default 30 per operation) so CI stays short; on SQLite and
PostgreSQL like every other test. A failure prints the request that broke the contract.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hub.config import CONTRACTS_DIR

schema = schemathesis.openapi.from_path(CONTRACTS_DIR / "openapi.yaml")
EXAMPLES = int(os.environ.get("LOKET_FUZZ_EXAMPLES", "30"))
FILE_CASE = "POST /api/v1/cases"
# The fields whose rules go beyond what JSON Schema can say (see the module's docstring).
BEYOND_THE_SCHEMA = {"trader.enterprise_number", "incident_date", "complaint_date"}
ADMISSIBILITY = {"/problems/needs-answers", "/problems/not-admissible"}


def filed_or_refused_for_a_rule_beyond_the_schema(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code == 201:
        return None
    body = response.json() if response.status_code == 422 else {}
    if body.get("type") in ADMISSIBILITY:
        return None
    fields = {e.get("field") for e in body.get("errors", [])}
    if response.status_code == 422 and fields and fields <= BEYOND_THE_SCHEMA:
        return None
    raise AssertionError(
        f"A case the contract accepts was answered {response.status_code}: "
        f"{response.text[:600]}. Either the server is stricter than contracts/case.schema.json "
        "(tighten the contract) or it refuses a valid case (fix the server)."
    )


@pytest.fixture
def api_app(hub):
    """The app with limits far above what the fuzzing sends: the limits have tests of their
    own (tests/test_limits.py), and a 429 here would hide what the contract check is for."""
    from dataclasses import replace

    from hub.services import Hub
    from loket.app import create_app

    high = "100000 per hour"
    settings = replace(
        hub.settings,
        api_filing_limit=high,
        tracking_limit=high,
        tracking_case_limit=high,
        confirmation_mail_limit=high,
        agency_api_limit=high,
        agency_token_limit=high,
    )
    limited_less = Hub.from_settings(settings, db=hub.db, clock=hub.clock)
    app = create_app(hub=limited_less)
    app.testing = True
    yield app
    limited_less.directory.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_its_contract(case, api_app):
    if case.operation.label == FILE_CASE:
        case.call_and_validate(
            app=api_app,
            excluded_checks=[positive_data_acceptance],
            additional_checks=[filed_or_refused_for_a_rule_beyond_the_schema],
        )
    else:
        case.call_and_validate(app=api_app)


def test_the_replacement_check_can_fail():
    """The stricter rule refuses a schema-valid case answered for any other reason."""

    positive = SimpleNamespace(
        meta=SimpleNamespace(generation=SimpleNamespace(mode=SimpleNamespace(is_positive=True)))
    )

    class Response:
        status_code = 422
        text = '{"type": "/problems/validation"}'

        def json(self):
            return {"type": "/problems/validation", "errors": [{"field": "domain"}]}

    with pytest.raises(AssertionError, match="answered 422"):
        filed_or_refused_for_a_rule_beyond_the_schema(None, Response(), positive)
    Response.status_code = 500
    with pytest.raises(AssertionError, match="answered 500"):
        filed_or_refused_for_a_rule_beyond_the_schema(None, Response(), positive)
