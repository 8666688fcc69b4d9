"""deploy/provisiond.service and the Mosquitto reload units. systemd is not PID 1 on the test
machines, so the units are checked with `systemd-analyze verify` (no warning allowed) and the
service's command and environment run as a process: its data directory is the one
StateDirectory= makes writable under ProtectSystem=strict."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import need
from tests.support.deployment import DEPLOY
from tests.support.podman import tools_missing

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


def test_the_reload_service_reloads_mosquitto_without_provisionds_privileges() -> None:
    assert settings("provisiond-mosquitto-reload.path", "Unit") == [
        "provisiond-mosquitto-reload.service"
    ]
    assert settings("provisiond-mosquitto-reload.service", "ExecStart") == [
        "/usr/bin/systemctl reload mosquitto.service"
    ]
    assert not settings("provisiond-mosquitto-reload.service", "User")  # root, not provisiond
