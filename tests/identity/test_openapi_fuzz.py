"""schemathesis against the OpenAPI document of a running `intentd up`, authenticated.

Every operation of the Experience plane's schema gets generated requests
(valid ones, and ones that break the schema); no answer may be a 5xx, and
every answer must conform to the schema (documented status code, content
type, headers and body). The example count per operation is bounded so the
whole run stays well under two minutes.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from identity_helpers import World
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 15
# Logging out would revoke the token the rest of the run authenticates with.
SKIPPED = {("POST", "/api/auth/logout")}


def _fuzz(operation, mode: GenerationMode, token: str) -> None:
    """Run generated requests against one operation; raises on the first failing check."""
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def fuzz(case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    fuzz()


def test_experience_api_conforms_and_never_fails(world: World):
    schema = schemathesis.openapi.from_url(f"{world.url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed, failures = [], []
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        # Intents are submitted with a session token; everything else as the tenant's admin.
        token = (
            world.owner_session.session_token if operation.path == "/api/intent/submit" else world.admin.access_token
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, token)
            except Exception as exc:  # noqa: BLE001 (collect every operation's failure, not just the first)
                failures.append(f"{operation.label} ({mode.value}): {exc}")
        fuzzed.append(operation.label)
    assert len(fuzzed) >= 20, fuzzed  # the whole API was reached, not an empty schema
    assert not failures, "\n\n".join(failures)
