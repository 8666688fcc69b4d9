"""deploy/provisiond.service and the Mosquitto reload units: `systemd-analyze verify` (no
warning allowed); the service's environment as a process (its data directory is the one
StateDirectory= makes writable under ProtectSystem=strict); and, systemd not being PID 1 on
the test machines, the units run under systemd in a podman container: provisiond serves in
its sandbox, and a device's account written into Mosquitto's files lets it in once the .path
unit has reloaded Mosquitto."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.support.deployment import DEPLOY
from tests.support.podman import Podman, standin_bases, tools_missing

UNITS = (
    "provisiond.service",
    "provisiond-mosquitto-reload.path",
    "provisiond-mosquitto-reload.service",
)
INSTALLED = "/opt/provisiond/.venv/bin/provisiond"


def settings(unit: str, key: str) -> list[str]:
    text = (DEPLOY / unit).read_text()
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    missing = tools_missing({"systemd-analyze": "systemd"})
    need(not missing, "no systemd-analyze (apt-get install systemd)")
    for unit in UNITS:
        # the unit names the installed entry point; here it is this checkout's
        text = (
            (DEPLOY / unit)
            .read_text()
            .replace(INSTALLED, str(Path(sys.executable).parent / "provisiond"))
        )
        (tmp_path / unit).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", *UNITS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 on an unknown key or a value it cannot parse: it only warns
    assert (done.returncode, done.stderr) == (0, "")


def test_the_service_keeps_its_data_where_the_sandbox_lets_it_write(tmp_path: Path) -> None:
    assert settings("provisiond.service", "StateDirectory") == ["provisiond"]
    assert settings("provisiond.service", "ProtectSystem") == ["strict"]
    assert settings("provisiond.service", "NoNewPrivileges") == ["true"]
    assert int(settings("provisiond.service", "LimitNOFILE")[0]) >= 8692  # deployment.md
    environment = dict(line.split("=", 1) for line in settings("provisiond.service", "Environment"))
    # the files of the mosquitto-files example of docs/integrations.md, which the .path unit
    # watches, in the directory the unit lets provisiond write
    watched = settings("provisiond-mosquitto-reload.path", "PathChanged")
    assert settings("provisiond.service", "ReadWritePaths") == ["-" + os.path.dirname(watched[0])]
    config = tmp_path / "provisiond.toml"
    config.write_text(
        "[broker]\n"
        'kind = "mosquitto-files"\n'
        f'password_file = "{watched[0]}"\n'
        f'acl_file = "{watched[1]}"\n'
        'reload_command = "/bin/true"  # the .path unit reloads Mosquitto\n'
    )
    environment["PROVISIOND_CONFIG_FILE"] = str(config)
    environment["PROVISIOND_DATA_DIR"] = environment["PROVISIOND_DATA_DIR"].replace(
        "%S",
        "/var/lib",  # systemd's state directory root for system units
    )
    [exec_start] = settings("provisiond.service", "ExecStart")
    assert exec_start.startswith(INSTALLED + " serve ")
    shown = subprocess.run(
        [sys.executable, "-m", "provisiond", "config", "show", "--json"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")},
            **environment,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    effective = json.loads(shown.stdout)
    assert effective["environment"] == "production"
    assert effective["database_url"] == "sqlite:////var/lib/provisiond/provisiond.db"
    assert effective["broker"]["password_file"] == watched[0]


# ------------------------------------------------------------- under systemd, in a container

# A host with systemd as PID 1 (in a podman container: systemd is not PID 1 on the test
# machines), Mosquitto reading the password and ACL files provisiond writes, provisiond
# installed in /opt/provisiond/.venv (the image's environment, linked there), the settings of
# docs/deployment.md's mosquitto-files example, and the three units, enabled.
HOST = """FROM {python}
RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv \\
    mosquitto mosquitto-clients && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home-dir /var/lib/provisiond --shell /usr/sbin/nologin provisiond \\
    && install -d -o provisiond -g mosquitto -m 2750 /etc/mosquitto/provisiond \\
    && for f in passwords acl; do \\
         install -o provisiond -g mosquitto -m 0640 /dev/null /etc/mosquitto/provisiond/$f; done
COPY mosquitto.conf /etc/mosquitto/conf.d/provisiond.conf
COPY provisiond.toml /etc/provisiond/provisiond.toml
COPY --from={image} /app /app
RUN mkdir -p /opt/provisiond && ln -s /app/.venv /opt/provisiond/.venv
COPY units/ /etc/systemd/system/
RUN systemctl enable provisiond.service provisiond-mosquitto-reload.path
CMD ["/sbin/init"]
"""
MOSQUITTO_CONF = """listener 1883
allow_anonymous false
password_file /etc/mosquitto/provisiond/passwords
acl_file /etc/mosquitto/provisiond/acl
"""


def _settings_toml(text: str) -> str:
    """The mosquitto-files example of docs/deployment.md (the toml block after its heading)."""
    section = text.split("**Mosquitto's files", 1)[1]
    return section.split("```toml\n", 1)[1].split("```", 1)[0]


def _host_image(podman: Podman, image: str, directory: Path) -> str:
    docs = (DEPLOY.parent / "docs" / "deployment.md").read_text()
    (directory / "provisiond.toml").write_text(
        'device_key_passphrase = "a-passphrase-for-the-test"\n' + _settings_toml(docs)
    )
    (directory / "mosquitto.conf").write_text(MOSQUITTO_CONF)
    (directory / "units").mkdir()
    for unit in UNITS:
        shutil.copy(DEPLOY / unit, directory / "units" / unit)
    python = standin_bases(podman)[0]
    (directory / "Containerfile").write_text(HOST.format(python=python, image=image))
    tag = image.replace("provisiond-test:", "provisiond-test-systemd:")
    podman.run("build", "--pull=never", "-t", tag, str(directory))
    return tag


@pytest.fixture
def systemd_host(podman: Podman, image: str, tmp_path: Path) -> Iterator[str]:
    host = _host_image(podman, image, tmp_path)
    name = f"provisiond-systemd-{uuid.uuid4().hex[:8]}"
    # SYS_ADMIN: systemd sets up the unit's sandbox (mount namespaces) only with it
    podman.run("run", "-d", "--name", name, "--systemd=always", "--cap-add", "SYS_ADMIN", host)
    try:
        yield name
    finally:
        podman.run("rm", "-f", "-v", "-t", "5", name, check=False)


@pytest.mark.slow
def test_under_systemd_the_unit_serves_and_the_path_unit_reloads_mosquitto(
    podman: Podman, systemd_host: str
) -> None:
    def host(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman.run("exec", systemd_host, *command, check=check)

    deadline = time.monotonic() + 60
    while host("python3", "/app/healthcheck.py", check=False).returncode != 0:
        if time.monotonic() > deadline:
            journal = host("journalctl", "--no-pager", "-u", "provisiond", check=False)
            raise AssertionError(f"provisiond.service not ready:\n{journal.stdout[-4000:]}")
        time.sleep(0.5)
    pid = host("systemctl", "show", "-p", "MainPID", "--value", "provisiond").stdout.strip()
    mountinfo = host("cat", f"/proc/{pid}/mountinfo").stdout.splitlines()
    # mount point: its options' first (ro or rw); the later of two mounts on one point wins
    mounts = {line.split()[4]: line.split()[5].split(",")[0] for line in mountinfo}
    # ProtectSystem=strict: read-only but for the state directory and ReadWritePaths
    assert mounts["/"] == "ro"
    assert mounts["/var/lib/provisiond"] == "rw"
    assert mounts["/etc/mosquitto/provisiond"] == "rw"
    owner = host("stat", "-c", "%U", "/var/lib/provisiond/provisiond.db").stdout.strip()
    assert owner == "provisiond"

    # a device registered with the CLI, as the service's user with the service's settings …
    created = host(
        "runuser", "-u", "provisiond", "--", "env",
        "PROVISIOND_CONFIG_FILE=/etc/provisiond/provisiond.toml",
        "PROVISIOND_DATA_DIR=/var/lib/provisiond",
        "/opt/provisiond/.venv/bin/provisiond", "devices", "create", "SN-SYSTEMD-1", "--json",
    )  # fmt: skip
    device = json.loads(created.stdout)
    token = device["credential"]["secret"]
    publish = (
        "mosquitto_pub", "-h", "127.0.0.1", "-u", token.split(".")[0], "-P", token,
        "-t", f"devices/{device['id']}/hello", "-m", "hello",
    )  # fmt: skip
    # … connects once serve has written its account and the .path unit has reloaded
    # Mosquitto (provisiond's own reload_command does nothing)
    deadline = time.monotonic() + 30
    while host(*publish, check=False).returncode != 0:
        if time.monotonic() > deadline:
            journal = host("journalctl", "--no-pager", check=False)
            raise AssertionError(f"the device was never let in:\n{journal.stdout[-4000:]}")
        time.sleep(0.5)
    reloads = host("journalctl", "--no-pager", "-u", "mosquitto").stdout
    assert "Sent signal SIGHUP to main process" in reloads
