"""Fuzzing the admin and device APIs with schemathesis, from provisiond's own OpenAPI
document (docs/openapi.json), over real HTTP: whatever the input, no 5xx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server

pytestmark = pytest.mark.slow  # fuzzing

ROOT = Path(__file__).resolve().parents[3]
schema = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))
# an OCSP request is binary (DER): sent as the bytes generated
schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")


@pytest.fixture
def server_settings(sqlite_url: str) -> Settings:
    return load_settings(
        database_url=sqlite_url,
        log_level="error",
        provisioning__unknown_source_rate_per_minute=100_000,
        claims__rate_per_minute=100_000,
        sessions__login_rate_per_minute=100_000,
    )


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case: schemathesis.Case, server: Server) -> None:
    response = case.call(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    assert response.status_code < 500, (
        case.method,
        case.path,
        response.status_code,
        response.text[:500],
    )
