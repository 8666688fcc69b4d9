"""A configuration error is one line naming the setting, and exit code 3, from every command
and whichever source the setting came from (environment, config file, flag) — never a
traceback. The installed entry point as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.mosquitto import free_port

pytestmark = pytest.mark.slow  # some thirty processes, each a Python start


def provisiond(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
    return subprocess.run(
        [sys.executable, "-m", "provisiond", *args],
        env={**clean, "PROVISIOND_DATA_DIR": str(cwd), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error[configuration-error]: "), lines[0]
    for name in named:
        assert name in lines[0], (name, lines[0])


@pytest.fixture
def migrated(sqlite_url: str) -> dict[str, str]:
    """A migrated database: a copy of the session's template (`db upgrade` is tested in
    test_migrations and test_cli; run here as a process it cost a Python start per test)."""
    return {"PROVISIOND_DATABASE_URL": sqlite_url}


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "0"],
        ["serve", "--migrate", "--port", "0"],
        ["demo", "--port", "0"],
    ],
)
def test_serving_in_production_without_the_passphrase(
    command: list[str], migrated: dict[str, str], tmp_path: Path
) -> None:
    env = {**migrated, "PROVISIOND_ENVIRONMENT": "production"}
    env["PROVISIOND_PORT"] = str(free_port())
    assert_one_error_line(
        provisiond(*command, env=env, cwd=tmp_path),
        "device_key_passphrase",
        "PROVISIOND_DEVICE_KEY_PASSPHRASE",
    )


def test_production_from_a_config_file(migrated: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "provisiond.toml"
    config.write_text('environment = "production"\n')
    assert_one_error_line(
        provisiond("serve", "--config", str(config), env=migrated, cwd=tmp_path),
        "device_key_passphrase",
    )


# every command that reads the settings (those that take none are left out)
COMMANDS = [
    ["serve"],
    ["demo", "--no-serve"],
    ["labels", "--out", "labels.pdf"],
    ["devices", "list"],
    ["devices", "import", "-", "--credentials-out", "creds.csv"],
    ["devices", "show", "X"],
    ["devices", "export"],
    ["groups", "list"],
    ["users", "list"],
    ["models", "list"],
    ["tokens", "list"],
    ["profiles", "list"],
    ["ca", "list"],
    ["broker", "status"],
    ["webhooks", "list"],
    ["events", "list"],
    ["lorawan", "status"],
    ["db", "upgrade"],
    ["db", "current"],
    ["config", "show"],
]


# Every command in one process (twenty Python starts cost ~20 s of CPU): the entry point's
# own function, each command's file descriptors 1 and 2 caught apart, and an exception
# escaping it printed as the interpreter would print it.
EVERY_COMMAND = """
import json, os, sys, tempfile, traceback
from provisiond.cli.app import main
results = {}
for args in json.loads(sys.argv[1]):
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            sys.argv = ["provisiond", *args]
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        out.seek(0)
        err.seek(0)
        results[" ".join(args)] = [code, out.read().decode(), err.read().decode()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def every_command(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    cwd = tmp_path_factory.mktemp("every-command")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
    done = subprocess.run(
        [sys.executable, "-c", EVERY_COMMAND, json.dumps(COMMANDS)],
        env={**clean, "PROVISIOND_DATA_DIR": str(cwd), "PROVISIOND_LOG_LEVEL": "loud"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: dict[str, list[Any]] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_an_invalid_value_from_the_environment(
    command: list[str], every_command: dict[str, list[Any]]
) -> None:
    code, stdout, stderr = every_command[" ".join(command)]
    result = subprocess.CompletedProcess(command, code, stdout, stderr)
    assert_one_error_line(result, "log_level")


@pytest.mark.parametrize(
    "command", [["serve"], ["labels", "--out", "labels.pdf"], ["devices", "list"]]
)
def test_an_invalid_value_from_a_config_file(command: list[str], tmp_path: Path) -> None:
    config = tmp_path / "provisiond.toml"
    config.write_text('port = "eighty"\n')
    result = provisiond(*command, "--config", str(config), env={}, cwd=tmp_path)
    assert_one_error_line(result, "port")


def test_an_invalid_value_from_a_flag(tmp_path: Path) -> None:
    assert_one_error_line(
        provisiond("serve", "--log-level", "loud", env={}, cwd=tmp_path), "log_level"
    )


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--device-tls-port", "0"], {}),
        ([], {"PROVISIOND_PROVISIONING__MQTT_CLIENT_CERTIFICATES": "true"}),
    ],
    ids=["device-tls-port", "mqtt-client-certificates"],
)
def test_attesting_client_certificates_without_a_server_certificate(
    flags: list[str], env: dict[str, str], migrated: dict[str, str], tmp_path: Path
) -> None:
    env = {**migrated, **env, "PROVISIOND_PORT": str(free_port())}
    assert_one_error_line(
        provisiond("serve", *flags, env=env, cwd=tmp_path),
        "provisioning__mqtt_tls_cert",
        "provisioning__mqtt_tls_key",
    )
