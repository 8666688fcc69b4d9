"""deploy/: the alert rules pass promtool's checks and unit tests (each alert fires on its
stuck case and not otherwise: deploy/prometheus-rules.test.yaml), and every query of the
rules and of the Grafana dashboard names a metric a real provisiond exports (scraped over
HTTP); promtool lints that exposition too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import need
from tests.integration.web.conftest import Server

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RULES = DEPLOY / "prometheus-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus-rules.test.yaml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
METRIC = re.compile(r"\b(provisiond_[a-z0-9_]+)")


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    need(path is not None, "no promtool (apt-get install prometheus)")
    assert path is not None
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_pass_promtool_check(promtool: str) -> None:
    done = run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_fires_on_its_stuck_case_only(promtool: str) -> None:
    done = run(promtool, "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def alerts() -> dict[str, str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    cases: dict[str, list[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    for alert in alerts():
        assert True in cases.get(alert, []), f"{alert}: no test where it fires"
        assert False in cases.get(alert, []), f"{alert}: no test where it stays quiet"


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        out += [t["expr"] for t in panel["targets"]]
    out += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return out


def exported(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names |= {s.name for s in family.samples}
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
    return names


def scraped(server: Server, api: httpx.Client) -> str:
    # a webhook, so that its series are there too
    r = api.post(
        "/api/v1/webhooks",
        json={
            "group": None,
            "url": "https://hooks.example.com/in",
            "events": ["device.registered"],
        },
    )
    assert r.status_code == 201, r.text
    assert api.get("/api/v1/devices").status_code == 200  # a request, so a histogram sample
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.status_code == 200
    return metrics.text


def test_every_query_names_metrics_provisiond_exports(
    server: Server,
    api: httpx.Client,
) -> None:
    names = exported(scraped(server, api))
    queries: list[tuple[str, str]] = [("dashboard", q) for q in dashboard_queries()]
    queries += [(f"alert {a}", q) for a, q in alerts().items()]
    used: set[str] = set()
    for where, query in queries:
        found = set(METRIC.findall(query))
        assert found, f"{where}: {query!r} names no provisiond metric"
        assert found <= names, f"{where}: {sorted(found - names)} are not exported"
        used |= found
    # and the dashboard shows every figure of what waits
    waiting = {
        n
        for n in names
        if n.startswith(
            (
                "provisiond_outbox",
                "provisiond_webhook",
                "provisiond_broker",
                "provisiond_tts",
                "provisiond_lease",
            )
        )
    }
    assert waiting <= used


def test_promtool_finds_nothing_to_lint_in_the_exposition(
    promtool: str,
    server: Server,
    api: httpx.Client,
) -> None:
    text: Any = scraped(server, api)
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
