"""Every error class renders through the HTTP handler as a problem document; the committed
OpenAPI document matches the app's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson

from provisiond import openapi
from provisiond.errors import REGISTRY, Problem, Unauthenticated, Unavailable

ROOT = Path(__file__).resolve().parents[3]


def test_every_error_class_renders_as_problem_json() -> None:
    app = openapi.compose_app(openapi.Settings(database_url="sqlite://"), None)  # type: ignore[arg-type]

    @app.get("/boom/{code}")
    async def boom(code: str) -> None:
        raise REGISTRY[code](f"{code} happened", problems=[Problem("here", field="f", line=3)])

    async def call_all() -> dict[str, httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            return {code: await client.get(f"/boom/{code}") for code in REGISTRY}

    for code, response in asyncio.run(call_all()).items():
        cls = REGISTRY[code]
        assert response.status_code == cls.status, code
        assert response.headers["content-type"] == "application/problem+json"
        doc = response.json()
        assert doc == {
            "type": f"urn:provisiond:error:{code}",
            "title": cls.title,
            "status": cls.status,
            "detail": f"{code} happened",
            "code": code,
            "retryable": cls.retryable,
            "instance": f"/boom/{code}",
            "errors": [{"message": "here", "field": "f", "line": 3}],
        }
        if issubclass(cls, Unavailable):
            assert response.headers["retry-after"] == "5"
        if issubclass(cls, Unauthenticated):
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_committed_openapi_document_is_current() -> None:
    committed = orjson.loads((ROOT / "docs" / "openapi.json").read_bytes())
    assert committed == orjson.loads(openapi.render()), (
        "the API changed: run `python -m provisiond.openapi > docs/openapi.json` "
        "and review the difference"
    )


def test_every_error_code_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text()
    for code, cls in REGISTRY.items():
        row = f"| `{code}` | {cls.status} | {cls.exit_code} | {'yes' if cls.retryable else 'no'}"
        assert row in doc, f"docs/api.md lacks the row of {code}"
        assert f"| {cls.title} |" in doc, f"docs/api.md: the meaning of {code} is not its title"
