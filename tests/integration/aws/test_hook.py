"""The pre-provisioning hook (AWS's pre-provisioning Lambda), a real HTTP server on
loopback: it gets AWS's request, signed; allow with parameter overrides, refuse, fail and
answer late each have their documented outcome, and a token refused by the hook works
again once the hook allows it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.aws import sdk
from tests.integration.aws.conftest import Fleet

SECRET = "hook secret for tests"
HOOKED = "HookedTemplate"


class Hook:
    """What the hook answers next, and what it was sent."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (200, b'{"allowProvisioning": true}')
        self.delay = 0.0
        self.requests: list[tuple[dict[str, Any], str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/pre-provision"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = self.headers.get("X-Provisiond-Signature") == f"sha256={expected}"
                hook.requests.append((json.loads(body), "signed" if signed else "unsigned"))
                time.sleep(hook.delay)  # the hook's own slowness, what the deadline is for
                status, answer = hook.answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    made.thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture
def aws_settings() -> dict[str, object]:
    return {"hook_timeout_seconds": 1, "hook_secret": SECRET}


@pytest.fixture
def aws_templates(hook: Hook) -> dict[str, object]:
    return {
        HOOKED: {
            "profile": "cameras",
            "tags": {"site": "Site"},
            "thing_name": "{serial}-{Site}",
            "pre_provisioning_hook": hook.url,
        }
    }


def test_the_hook_decides_and_overrides(fleet: Fleet, hook: Hook, tmp_path: Path) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    with sdk.identity_v5(fleet.port, *claim, fleet.server_ca, client_id="hooked-1") as identity:
        made = sdk.create_keys(identity)
        token = made.certificate_ownership_token

        hook.answer = (200, b'{"allowProvisioning": false}')
        refused = sdk.rejected(lambda: sdk.register(identity, HOOKED, token, SerialNumber="H-1"))
        assert (refused.status_code, refused.error_code) == (403, "AccessDenied")

        hook.answer = (500, b"oops")
        failed = sdk.rejected(lambda: sdk.register(identity, HOOKED, token, SerialNumber="H-1"))
        assert (failed.status_code, failed.error_code) == (500, "InternalFailure")

        hook.answer = (200, b'{"allowProvisioning": "yes"}')  # not a boolean: a hook error
        wrong = sdk.rejected(lambda: sdk.register(identity, HOOKED, token, SerialNumber="H-1"))
        assert (wrong.status_code, wrong.error_code) == (500, "InternalFailure")

        hook.answer, hook.delay = (200, b'{"allowProvisioning": true}'), 3.0
        late = sdk.rejected(lambda: sdk.register(identity, HOOKED, token, SerialNumber="H-1"))
        assert (late.status_code, late.error_code) == (504, "HookTimeout")

        hook.delay = 0.0
        hook.answer = (
            200,
            b'{"allowProvisioning": true, "parameterOverrides": {"Site": "south"}}',
        )
        thing = sdk.register(identity, HOOKED, token, SerialNumber="H-1", Site="north")
    assert thing.thing_name == "H-1-south"
    device = fleet.server.client().get("/api/v1/devices/H-1").json()
    assert device["tags"] == {"site": "south"}

    sent, signature = hook.requests[-1]
    assert signature == "signed"
    assert sent["parameters"] == {"SerialNumber": "H-1", "Site": "north"}
    assert sent["certificateId"] == made.certificate_id
    assert sent["certificatePem"] == made.certificate_pem
    assert sent["clientId"] == "hooked-1"
    assert sent["templateArn"].endswith(f"/{HOOKED}")
    assert len(sent["claimCertificateId"]) == 64
    assert len(hook.requests) == 5  # each attempt asked the hook once
