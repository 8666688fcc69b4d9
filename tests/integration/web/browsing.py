"""What the pages' browser tests share: signing in, an organisation to look at, and the
accessibility check (axe-core, from npm, pinned in package.json) of each state a test reaches.

A console page's test audits its own module's pages::

    check = Audit(page, routes_of("imports"))
    ...; check("import: dry run with problems")
    check.assert_clean()   # every GET route of web/pages/imports.py visited, no violation

(`test_accessibility.py` walks the phone flows, and checks that every module of web/pages/
is walked there or audited by its own test.)
"""

from __future__ import annotations

import csv
import importlib
import io
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi.routing import APIRoute

from provisiond.web import pages

PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
FAILING_IMPACTS = ("serious", "critical")

# The violations of one page, as plain data (axe's results are large: keep what says what
# and where).
RUN_AXE = """async (impacts) => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations
    .filter((v) => impacts.includes(v.impact))
    .map((v) => ({
      id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.join(" "), html: n.html, summary: n.failureSummary,
      })),
    }));
}"""


def page_modules() -> list[str]:
    """The modules of web/pages/ that have routes."""
    return [
        m.name
        for m in pkgutil.iter_modules(pages.__path__)
        if getattr(importlib.import_module(f"{pages.__name__}.{m.name}"), "router", None)
    ]


def routes_of(*modules: str) -> list[APIRoute]:
    """The GET routes of these modules of web/pages/ (each flow's ``router``)."""
    routes = []
    for name in modules:
        router = importlib.import_module(f"{pages.__name__}.{name}").router
        routes += [r for r in router.routes if isinstance(r, APIRoute) and "GET" in r.methods]
    return routes


def describe(violations: dict[str, list[dict[str, Any]]]) -> str:
    """The violations, page by page, readable in a test report."""
    lines = []
    for where, found in violations.items():
        lines.append(f"{where}:")
        for v in found:
            lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['url']})")
            for node in v["nodes"][:5]:
                lines.append(f"    at {node['target']}: {node['html'][:160]}")
                summary = " ".join(node["summary"].split())
                lines.append(f"      {summary[:300]}")
            if len(v["nodes"]) > 5:
                lines.append(f"    … and {len(v['nodes']) - 5} more elements")
    return "\n".join(lines)


@dataclass
class Audit:
    """Runs axe on the page's current state at every size; remembers what it saw.

    ``size`` is the viewport the flow itself is walked at (a phone for the installer's flows,
    a desktop for the console); each check looks at every size and comes back to it."""

    page: Any
    routes: list[APIRoute]
    size: str = "phone"
    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)

    def __call__(self, what: str) -> None:
        path = urlsplit(self.page.url).path
        self.visited |= {r.path for r in self.routes if r.path_regex.match(path)}
        for size, viewport in SIZES.items():
            self.page.set_viewport_size(viewport)
            found = self.page.evaluate(RUN_AXE, list(FAILING_IMPACTS))
            if found:
                self.violations[f"{what} ({path}, {size})"] = found
        self.page.set_viewport_size(SIZES[self.size])
        self.checked.append(what)

    def missed(self, excused: dict[str, str] | None = None) -> set[str]:
        return {r.path for r in self.routes} - self.visited - set(excused or {})

    def assert_clean(self, excused: dict[str, str] | None = None) -> None:
        """Every route visited (but those ``excused``: path -> why not a page), and no
        serious or critical violation anywhere."""
        missed = self.missed(excused)
        assert not missed, f"pages not checked (visit them in this test): {missed}"
        assert not self.violations, (
            f"{len(self.violations)} of {len(self.checked) * len(SIZES)} page checks found "
            f"serious or critical accessibility violations:\n{describe(self.violations)}"
        )


def screenshot(page: Any, name: str) -> None:
    """docs/screenshots/NAME.png of the page at a desktop's size, when the run is asked to
    refresh them (``PROVISIOND_SCREENSHOTS=1 scripts/test -k console``; docs/console.md)."""
    if not os.environ.get("PROVISIOND_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size(SIZES["desktop"])
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def sign_in(page: Any, url: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form (the browser keeps the session cookie)."""
    page.goto(f"{url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")


def organisation(api: httpx.Client) -> dict[str, str]:
    """Sites, users of each role (boss@ is an admin of Kanarra), a model, profiles for the
    proofs, unclaimed devices; returns the button devices' access tokens."""
    for path in (
        "Kanarra/Sadler-Isberg/West/Anaheim",
        "Kanarra/Sadler-Isberg/West/Irvine",
        "Kanarra/Sadler-Isberg/East",
    ):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    model = {"name": "UNO-2483G", "description": "Advantech gateway"}
    assert api.post("/api/v1/models", json=model).status_code == 201
    for email, role, group in (
        ("tech@kanarra.example", "installer", "Kanarra/Sadler-Isberg"),
        ("viewer@kanarra.example", "viewer", "Kanarra/Sadler-Isberg"),
        ("boss@kanarra.example", "admin", "Kanarra"),
    ):
        user = {"email": email, "password": PASSWORD, "role": role, "group": group}
        assert api.post("/api/v1/users", json=user).status_code == 201
    for proof in ("button", "code"):
        profile = {"name": proof, "claim_proof": proof, "claim_window": 600}
        assert api.post("/api/v1/profiles", json=profile).status_code == 201
    tokens = {}
    for profile, rows in (
        (None, "serial,model\nPLAIN-1,UNO-2483G\n"),
        ("button", "serial\nBTN-1\nBTN-2\n"),
        ("code", "serial\nCODE-1\n"),
    ):
        r = api.post(
            "/api/v1/devices/import",
            params={"profile": profile} if profile else {},
            content=rows,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        for row in csv.DictReader(io.StringIO(r.text)):
            if row["credential_type"] == "access-token":
                tokens[row["serial"]] = row["secret"]
    return tokens
