"""deploy/Containerfile, built and run with podman: the runtime image holds provisiond's
locked runtime dependencies and its pages' libraries, no development tools and no Node.js,
runs as an unprivileged user, and — given compose.yaml's provisiond services' commands and
settings — creates the schema and the first admin, serves, reports healthy, lets a person
sign in from another host and manages the broker's accounts.

No container registry is reachable here: the image is built on local stand-ins for its
base images (tests/support/podman.py, docs/deployment.md)."""

from __future__ import annotations

import json
import re
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.web.conftest import free_port
from tests.support.deployment import (
    ROOT,
    compose,
    empty_database,
    healthcheck_command,
    host_address,
    make_env,
    shell_script,
    sign_in,
    tables,
    wait_reconciled,
)
from tests.support.mosquitto import Broker
from tests.support.podman import Podman

pytestmark = pytest.mark.slow


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


def _locked_closure(names: set[str]) -> set[str]:
    """Every package uv.lock installs for ``names``, themselves and their extras included."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    found: set[str] = set()
    todo: list[dict[str, Any]] = [
        *packages["provisiond"]["dependencies"],
        *({"name": n} for n in names),
    ]
    while todo:
        dep = todo.pop()
        package = packages.get(dep["name"], {})
        for extra in dep.get("extra", []):
            todo.extend(package.get("optional-dependencies", {}).get(extra, []))
        if dep["name"] not in found:
            found.add(dep["name"])
            todo.extend(package.get("dependencies", []))
    return found


INSPECT = """
import importlib.metadata as md, json, os, shutil
from pathlib import Path
import provisiond
vendor = Path(provisiond.__file__).parent / "web" / "static" / "vendor"
print(json.dumps({
    "uid": os.getuid(),
    "installed": sorted(d.metadata["Name"].lower().replace("_", "-") for d in md.distributions()),
    "node": [c for c in ("node", "nodejs", "npm") if shutil.which(c)],
    "vendor": sorted(p.name for p in vendor.iterdir()),
}))
"""


def test_the_image_holds_what_provisiond_runs_with_and_nothing_for_development(
    podman: Podman, image: str
) -> None:
    [inspected] = json.loads(podman.run("image", "inspect", image).stdout)
    assert inspected["Config"]["User"] == "10001:10001"
    assert inspected["Healthcheck"]["Test"] == ["CMD", *healthcheck_command()]
    found = json.loads(podman.run("run", "--rm", image, "python3", "-c", INSPECT).stdout)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = _names(project["project"]["dependencies"])
    # what the runtime dependencies need, as locked: a development tool may need it too
    development = _names(project["dependency-groups"]["dev"]) - _locked_closure(runtime)
    installed = set(found["installed"])
    assert runtime <= installed, runtime - installed
    assert not development & installed, development & installed  # pytest, mypy, playwright …
    assert found["node"] == []
    assert found["uid"] == 10001
    assert found["vendor"] == ["bootstrap.min.css", "jsQR.js"]


@pytest.fixture
def server(postgres_template: str) -> str:
    """The PostgreSQL server (host networking: the container reaches it as we do)."""
    return postgres_template


@pytest.fixture
def container(podman: Podman) -> Iterator[str]:
    name = f"provisiond-test-{uuid.uuid4().hex[:8]}"
    yield name
    podman.run("rm", "-f", "-v", "-t", "5", name, check=False)


def test_the_image_runs_the_compose_services_of_provisiond(
    podman: Podman,
    image: str,
    server: str,
    broker: Broker,
    container: str,
    tmp_path: Path,
) -> None:
    env = make_env(tmp_path / ".env")
    services = compose(env)["services"]
    port = free_port()
    with empty_database(server) as database:
        settings = {
            **services["provisiond-init"]["environment"],
            # where the services are from the host's network (compose: postgres, mosquitto)
            "PROVISIOND_DATABASE_URL": database,
            "PROVISIOND_BROKER__URL": broker.url,
            "PROVISIOND_PORT": str(port),
            "PROVISIOND_PROVISIONING__MQTT_PORT": "0",
        }
        options = ["--network", "host", *(f"--env={k}={v}" for k, v in settings.items())]
        init = shell_script(services["provisiond-init"])
        first = podman.run("run", "--rm", *options, image, "sh", "-ec", init)
        assert "created admin" in first.stdout + first.stderr  # the CLI's messages: stderr
        again = podman.run("run", "--rm", *options, image, "sh", "-ec", init)
        assert "exists: kept" in again.stdout + again.stderr
        assert "alembic_version" in tables(database)

        serve = services["provisiond"]["command"]
        started = time.monotonic()
        podman.run("run", "-d", "--name", container, *options, image, *serve)
        while podman.run("healthcheck", "run", container, check=False).returncode != 0:
            state = podman.run("inspect", container, "--format", "{{.State.Status}}").stdout
            if state.strip() != "running" or time.monotonic() - started > 60:
                logs = podman.run("logs", container, check=False)
                raise AssertionError(f"not healthy ({state.strip()}):\n{logs.stderr[-4000:]}")
            time.sleep(0.5)

        url = f"http://{host_address()}:{port}"
        page = sign_in(url, env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"])
        assert page.status_code == 200, page.headers
        assert env["ADMIN_EMAIL"] in page.text
        wait_reconciled(broker, lambda: podman.run("logs", container, check=False).stderr)
