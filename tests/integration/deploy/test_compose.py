"""deploy/compose.yaml. No container registry is reachable here, so the official postgres and
eclipse-mosquitto images cannot be had and `compose up` cannot run: the file is checked as
compose reads it (interpolated with what deploy/make-env writes), and each service's command,
configuration and environment run as processes on this machine's PostgreSQL and Mosquitto
(test_image.py runs provisiond's two services in the image itself)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.integration.web.conftest import free_port
from tests.support.deployment import (
    DEPLOY,
    compose,
    containerfile_instruction,
    empty_database,
    healthcheck_command,
    host_address,
    make_env,
    read_env,
    shell_script,
    sign_in,
    tables,
    wait_reconciled,
)
from tests.support.mosquitto import Broker, available, plugin_path
from tests.support.processes import wait_ready

LONG_RUNNING = {"postgres", "mosquitto", "provisiond"}
INIT = {"mosquitto-init", "provisiond-init"}


def test_make_env_writes_a_fresh_secret_for_each_placeholder(tmp_path: Path) -> None:
    env = make_env(tmp_path / ".env")
    example = read_env(DEPLOY / "env.example")
    assert env.keys() == example.keys()
    secrets = [env[k] for k, v in example.items() if v == "CHANGE-ME"]
    assert len(secrets) == 4
    assert len(set(secrets)) == 4
    assert all(len(s) == 36 and s.isalnum() for s in secrets)
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    again = subprocess.run([str(DEPLOY / "make-env"), str(tmp_path / ".env")], check=False)
    assert again.returncode != 0  # never overwrites the secrets the volumes were made with
    assert read_env(tmp_path / ".env") == env


def test_without_a_setting_compose_says_to_run_make_env() -> None:
    with pytest.raises(AssertionError, match="run deploy/make-env"):
        compose({})


def test_every_service_has_a_health_check_and_starts_after_what_it_needs(tmp_path: Path) -> None:
    services = compose(make_env(tmp_path / ".env"))["services"]
    assert set(services) == LONG_RUNNING | INIT
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"][0] == "CMD-SHELL", name
        assert services[name]["restart"] == "unless-stopped"
    for name in INIT:  # one-shot: no health check, run again only after a failure
        assert "healthcheck" not in services[name]
        assert services[name]["restart"] == "on-failure"
    assert services["mosquitto"]["depends_on"] == {
        "mosquitto-init": {"condition": "service_completed_successfully"}
    }
    assert services["provisiond-init"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}
    }
    assert services["provisiond"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "mosquitto": {"condition": "service_healthy"},
        "provisiond-init": {"condition": "service_completed_successfully"},
    }
    # migrations run once, in provisiond-init; the image's default command migrates (one
    # container on its own), the compose service does not
    assert "--migrate" not in services["provisiond"]["command"]
    assert "provisiond db upgrade" in shell_script(services["provisiond-init"])
    image_cmd = containerfile_instruction("CMD")
    assert image_cmd.replace(', "--migrate"', "") == str(services["provisiond"]["command"]).replace(
        "'", '"'
    )
    assert services["provisiond"]["healthcheck"]["test"][1] == " ".join(healthcheck_command())
    # the database URL names the postgres service's account
    pg = services["postgres"]["environment"]
    url = services["provisiond"]["environment"]["PROVISIOND_DATABASE_URL"]
    assert url == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{pg['POSTGRES_DB']}"
    )
    assert services["provisiond-init"]["environment"].items() >= (
        services["provisiond"]["environment"].items()
    )


# --------------------------------------------------------------------------- as processes


def _local(text: str, data: Path, port: int) -> str:
    """The mosquitto services' files and commands, for this machine: the volume is ``data``,
    the listener ``port``, the plugin where Debian has it, the image's mosquitto user us."""
    return (
        text.replace("/mosquitto/data", str(data))
        .replace("/usr/lib/mosquitto_dynamic_security.so", str(plugin_path()))
        .replace("listener 1883", f"listener {port} 127.0.0.1")
        .replace("-p 1883", f"-p {port}")
        .replace("1883:1883", f"{os.getuid()}:{os.getgid()}")
    )


@contextlib.contextmanager
def mosquitto_service(
    services: dict[str, Any], data: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    conf = data.parent / "mosquitto.conf"
    text = _local((DEPLOY / "mosquitto.conf").read_text(), data, port)
    if os.geteuid() == 0:
        text += "user root\n"  # else it drops to "mosquitto", who cannot write the test's files
    conf.write_text(text)
    log = (data.parent / "mosquitto.log").open("ab")
    process = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
        log.close()


def _listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 20
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.05)
    return False


def _sh(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-ec", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the CLI's messages are on stderr
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.slow
def test_the_compose_services_run_as_processes(postgres_template: str, tmp_path: Path) -> None:
    need(available(), "no mosquitto with the dynamic security plugin (apt-get install mosquitto)")
    need(shutil.which("pg_isready") is not None, "no pg_isready (apt-get install postgresql)")
    env = make_env(tmp_path / ".env")
    services = compose(env)["services"]
    data = tmp_path / "mosquitto-data"
    data.mkdir()
    port = free_port()

    # postgres: its health check
    pg = services["postgres"]
    host, pg_port = postgres_template.split("@", 1)[1].split("/", 1)[0].split(":")
    check = _sh(pg["healthcheck"]["test"][1], {**os.environ, "PGPORT": pg_port})
    assert check.returncode == 0, check.stdout
    assert host == "127.0.0.1"  # the health check's -h

    # mosquitto: without its init step (no plugin file) Mosquitto 2 either refuses to start
    # (newer 2.0 releases) or runs with no client at all (2.0.11): either way unhealthy …
    mosquitto = services["mosquitto"]
    health_check = _local(mosquitto["healthcheck"]["test"][1], data, port)
    mosquitto_env = {**os.environ, **mosquitto["environment"]}
    with mosquitto_service(services, data, port) as process:
        _listening(port, process)
        assert _sh(health_check, mosquitto_env).returncode != 0
    # … mosquitto-init creates the file, and keeps it when run again
    init = services["mosquitto-init"]
    init_env = {**os.environ, **init["environment"]}
    done = _sh(_local(shell_script(init), data, port), init_env)
    assert done.returncode == 0, done.stdout
    made = (data / "dynamic-security.json").read_text()
    done = _sh(_local(shell_script(init), data, port), init_env)
    assert "exists: kept" in done.stdout
    assert (data / "dynamic-security.json").read_text() == made

    with mosquitto_service(services, data, port) as process:
        assert _listening(port, process), (tmp_path / "mosquitto.log").read_text()
        health = _sh(health_check, mosquitto_env)
        assert health.returncode == 0, health.stdout
        broker = Broker(data, port, "provisiond-admin", env["MOSQUITTO_ADMIN_PASSWORD"])
        with empty_database(postgres_template) as database:
            _provisiond_services(services, env, database, broker)


def _provisiond_services(
    services: dict[str, Any], env: dict[str, str], database: str, broker: Broker
) -> None:
    port = free_port()
    local = {
        # the installed entry point of the image is this interpreter's
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PROVISIOND_DATABASE_URL": database,
        "PROVISIOND_BROKER__URL": broker.url,  # the admin client mosquitto-init made
        "PROVISIOND_PORT": str(port),
        "PROVISIOND_PROVISIONING__MQTT_PORT": "0",
    }
    init_env = {**os.environ, **services["provisiond-init"]["environment"], **local}
    first = _sh(shell_script(services["provisiond-init"]), init_env)
    assert first.returncode == 0, first.stdout
    assert f"created admin {env['ADMIN_EMAIL']}" in first.stdout
    assert "alembic_version" in tables(database)
    again = _sh(shell_script(services["provisiond-init"]), init_env)  # a restart: nothing new
    assert again.returncode == 0, again.stdout
    assert f"{env['ADMIN_EMAIL']} exists: kept" in again.stdout

    service = services["provisiond"]
    command = service["command"]
    assert command[0] == "/app/.venv/bin/provisiond"
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisiond", *command[1:]],
        env={**os.environ, **service["environment"], **local},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if not wait_ready(f"http://127.0.0.1:{port}", proc):
            proc.terminate()
            raise AssertionError(
                "provisiond did not come up:\n" + (proc.communicate(timeout=30)[1] or b"").decode()
            )
        health = subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py")],
            env={**os.environ, "PROVISIOND_PORT": str(port)},
            check=False,
        )
        assert health.returncode == 0
        # a person on another host signs in over plain HTTP (the demo mode of env.example)
        page = sign_in(f"http://{host_address()}:{port}", env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"])
        assert page.status_code == 200, page.headers
        wait_reconciled(broker, lambda: "(see the test's output)")
    finally:
        proc.terminate()
        proc.wait(30)
