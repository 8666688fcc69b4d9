"""The CLI of the integrations: credentials rotate and revoke, broker sync and status,
webhooks; on both backends, against a real Mosquitto where a broker is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli.conftest import Cli, write
from tests.support.broker_accounts import name
from tests.support.mosquitto import Broker, Device
from tests.support.tts_standin import tts_standin


@pytest.fixture
def managed(cli: Cli, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("PROVISIOND_BROKER__KIND", "mosquitto-dynsec")
    monkeypatch.setenv("PROVISIOND_BROKER__URL", broker.url)
    monkeypatch.setenv("PROVISIOND_BROKER__TIMEOUT_SECONDS", "5")
    return cli


def connects(broker: Broker, username: str, password: str, client_id: str = "") -> bool:
    device = Device(broker.port, username, password, client_id)
    try:
        return device.connect() == 0
    finally:
        device.close()


def test_broker_sync_status_rotate_and_revoke(managed: Cli, broker: Broker) -> None:
    created = managed.json("devices", "create", "CLI-B1")
    assert isinstance(created, dict)
    token = created["credential"]["secret"]
    shown = managed.json("devices", "show", "CLI-B1")
    assert isinstance(shown, dict)
    assert shown["topic_prefix"] == f"devices/{shown['id']}"

    status = managed.json("broker", "status")
    assert isinstance(status, dict)
    assert (status["kind"], status["accounts"], status["events_queued"]) == (
        "mosquitto-dynsec",
        0,
        1,
    )

    dry = managed.json("broker", "sync", "--dry-run")
    assert isinstance(dry, dict)
    assert (dry["dry_run"], dry["created"], dry["roles_created"]) == (True, 1, 1)
    assert not connects(broker, name(token), token)
    report = managed.json("broker", "sync")
    assert isinstance(report, dict)
    assert (report["accounts"], report["created"], report["errors"]) == (1, 1, [])
    assert connects(broker, name(token), token)
    again = managed("broker", "sync").stdout
    assert "accounts that were created" in again
    assert managed.json("broker", "status")["accounts"] == 1  # type: ignore[index]

    rotated = managed.json("devices", "rotate", "CLI-B1", "--type", "mqtt-basic")
    assert isinstance(rotated, dict)
    assert rotated["client_id"] == "CLI-B1"
    managed("broker", "sync")
    assert not connects(broker, name(token), token)
    assert connects(broker, rotated["username"], rotated["password"], "CLI-B1")

    result = managed("devices", "rotate", "CLI-B1")
    assert "password:" in result.stdout
    assert "shown once" in result.stderr
    revoked = managed.json("devices", "revoke", "CLI-B1")
    assert isinstance(revoked, dict)
    assert [c["type"] for c in revoked["revoked"]] == ["mqtt-basic"]
    report = managed.json("broker", "sync")
    assert isinstance(report, dict)
    assert (report["accounts"], report["deleted"], report["roles_deleted"]) == (0, 1, 1)
    assert "no active credential to revoke" in managed("devices", "revoke", "CLI-B1").stderr
    bad = managed("devices", "rotate", "CLI-B1", "--type", "x509", code=2)
    assert "x509 credentials are not rotated here" in bad.stderr
    managed("devices", "rotate", "CLI-B1", "--type", "carrier-pigeon", code=2)
    managed("devices", "rotate", "NO-SUCH", code=4)


def test_broker_sync_and_status_with_mosquittos_files(
    cli: Cli, files_broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = files_broker
    monkeypatch.setenv("PROVISIOND_BROKER__KIND", "mosquitto-files")
    monkeypatch.setenv("PROVISIOND_BROKER__PASSWORD_FILE", str(broker.password_file))
    monkeypatch.setenv("PROVISIOND_BROKER__ACL_FILE", str(broker.acl_file))
    monkeypatch.setenv("PROVISIOND_BROKER__PID_FILE", str(broker.pid_file))
    created = cli.json("devices", "create", "CLI-F1")
    assert isinstance(created, dict)
    token = created["credential"]["secret"]
    dry = cli.json("broker", "sync", "--dry-run")
    assert isinstance(dry, dict)
    assert (dry["kind"], dry["dry_run"], dry["created"]) == ("mosquitto-files", True, 1)
    assert name(token) not in broker.password_file.read_text()
    table = cli("broker", "sync").stdout
    assert "│ accounts that were created  │ 1     │" in table
    assert "roles" not in table  # the files have none
    assert name(token) in broker.password_file.read_text()
    assert token not in broker.password_file.read_text()  # the user name is no secret
    for _ in range(50):  # Mosquitto reads the files again after SIGHUP, asynchronously
        if connects(broker, name(token), token):
            break
        Device.pause(0.1)
    assert connects(broker, name(token), token)
    again = cli.json("broker", "sync")
    assert isinstance(again, dict)
    assert (again["accounts"], again["created"], again["updated"], again["deleted"]) == (1, 0, 0, 0)
    status = cli.json("broker", "status")
    assert isinstance(status, dict)
    assert (status["kind"], status["accounts"]) == ("mosquitto-files", 1)
    broker.pid_file.unlink()
    cli("devices", "revoke", "CLI-F1")
    failed = cli("broker", "sync", code=7)
    assert "could not be told to read them" in failed.stderr
    assert token not in broker.password_file.read_text()


def test_broker_commands_say_when_no_broker_is_configured(cli: Cli) -> None:
    result = cli("broker", "sync", code=3)
    assert "broker-not-configured" in result.stderr
    assert "PROVISIOND_BROKER__KIND" in result.stderr


def test_webhooks_from_the_cli(cli: Cli) -> None:
    added = cli.json(
        "webhooks",
        "add",
        "https://hooks.example.com/provisiond",
        "--group",
        "Kanarra/Sadler-Isberg",
        "--event",
        "device.claimed",
        "--event",
        "device.released",
    )
    assert isinstance(added, dict)
    assert added["secret"].startswith("whsec_")
    assert added["events"] == ["device.claimed", "device.released"]
    listed = cli.json("webhooks", "list")
    assert isinstance(listed, list)
    assert [w["id"] for w in listed] == [added["id"]]
    assert "secret" not in listed[0]
    cli("devices", "create", "CLI-W1", "--group", "Kanarra/Sadler-Isberg/West")
    shown = cli.json("webhooks", "show", added["id"])
    assert isinstance(shown, dict)
    assert shown["deliveries"] == {}  # not claimed: registered only, and serve is not running
    assert cli.json("webhooks", "disable", added["id"])["enabled"] is False  # type: ignore[index]
    enabled = cli.json("webhooks", "enable", added["id"])
    assert isinstance(enabled, dict)
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)

    bad_url = cli("webhooks", "add", "ftp://x", "--group", "Kanarra", code=2)
    assert "url must be an http:// or https:// URL" in bad_url.stderr
    private = cli("webhooks", "add", "http://0x7f.1:6379/", "--group", "Kanarra", code=2)
    assert "url must be a public destination: 127.0.0.1 is a loopback address" in private.stderr
    bad_event = cli(
        "webhooks",
        "add",
        "https://x.example",
        "--group",
        "Kanarra",
        "--event",
        "device.exploded",
        code=2,
    )
    assert "unknown event(s) 'device.exploded'" in bad_event.stderr
    cli("webhooks", "add", "https://x.example", "--group", "Nowhere", code=4)
    cli("webhooks", "show", "not-an-id", code=2)
    cli("webhooks", "delete", added["id"])
    cli("webhooks", "show", added["id"], code=4)
    assert cli.json("webhooks", "list") == []


def test_lorawan_devices_in_the_things_stack_from_the_cli(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("lorawan", "sync", code=3)  # not configured yet
    with tts_standin({"kanarra-meters"}) as standin:
        monkeypatch.setenv("PROVISIOND_TTS__URL", standin.url)
        monkeypatch.setenv("PROVISIOND_TTS__API_KEY", standin.api_key)
        monkeypatch.setenv("PROVISIOND_TTS__APPLICATION_ID", "kanarra-meters")
        profile = cli.json(
            "profiles",
            "create",
            "meters",
            "--frequency-plan",
            "EU_863_870_TTN",
            "--class-c",
            "--lorawan-version",
            "MAC_V1_0_4",
        )
        assert isinstance(profile, dict)
        assert profile["lorawan"] == {
            "frequency_plan_id": "EU_863_870_TTN",
            "lorawan_version": "MAC_V1_0_4",
            "supports_class_c": True,
        }
        bad = cli("profiles", "create", "bad", "--lorawan-version", "MAC_V9", code=2)
        assert "lorawan_version" in bad.stderr
        rows = write(
            tmp_path / "meters.csv",
            "Device EUI, Join EUI, Application Key\n"
            "0018B20000000201, 70B3D57ED0000010, 2B7E151628AED2A6ABF7158809CF4F3C\n",
        )
        cli(
            "devices",
            "import",
            str(rows),
            "--credentials-out",
            str(tmp_path / "c.csv"),
            "--group",
            "Kanarra/Tekton Health",
            "--profile",
            "meters",
        )
        report = cli.json("lorawan", "sync")
        assert isinstance(report, dict)
        assert len(report["registered"]) == 1
        shown = cli.json("devices", "show", "0018B20000000201")
        assert isinstance(shown, dict)
        assert shown["the_things_stack"]["status"] == "registered"
        assert shown["the_things_stack"]["end_device_id"] == "eui-0018b20000000201"
        status = cli.json("lorawan", "status")
        assert isinstance(status, dict)
        assert [d["status"] for d in status["devices"]] == ["registered"]
        cli(
            "lorawan",
            "replace",
            "0018B20000000201",
            "--dev-eui",
            "0018B20000000299",
            "--join-eui",
            "70B3D57ED0000010",
            "--app-key-stdin",
            input="000102030405060708090A0B0C0D0E0F\n",
        )
        again = cli.json("lorawan", "sync")
        assert isinstance(again, dict)
        assert (len(again["registered"]), len(again["removed"])) == (1, 1)
        assert standin.devices("is") == {"eui-0018b20000000299"}
        refused = cli(
            "lorawan",
            "replace",
            "0018B20000000201",
            "--dev-eui",
            "12",
            "--join-eui",
            "70B3D57ED0000010",
            code=2,
        )
        assert "--app-key-stdin" in refused.stderr
        standin.fail("is", 400, method="POST")
        cli(
            "lorawan",
            "replace",
            "0018B20000000201",
            "--dev-eui",
            "0018B20000000300",
            "--join-eui",
            "70B3D57ED0000010",
            "--app-key-stdin",
            input="000102030405060708090A0B0C0D0E0F\n",
        )
        failed = cli("lorawan", "sync", code=7)
        assert "400" in failed.stderr


def test_broker_sync_and_status_with_emqx(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from tests.support.emqx import EmqxStandIn, Session

    emqx = EmqxStandIn()
    emqx.start()
    try:
        for key, value in (
            ("KIND", "emqx"),
            ("EMQX_API_URL", emqx.url),
            ("EMQX_API_KEY", emqx.key),
            ("EMQX_API_SECRET", emqx.secret),
        ):
            monkeypatch.setenv(f"PROVISIOND_BROKER__{key}", value)
        created = cli.json("devices", "create", "CLI-E1")
        assert isinstance(created, dict)
        token = created["credential"]["secret"]
        first = cli.json("broker", "sync")
        assert isinstance(first, dict)
        assert (first["kind"], first["accounts"], first["deleted"]) == ("emqx", 1, 0)
        emqx.sessions["c1"] = Session("c1", name(token), datetime.now(UTC))
        cli("devices", "revoke", "CLI-E1")
        table = cli("broker", "sync").stdout
        assert "user names whose sessions were ended" in table
        assert "c1" not in emqx.sessions
        assert "0 user name(s) recorded" in cli("broker", "status").stdout
        emqx.stop()
        monkeypatch.setenv("PROVISIOND_BROKER__EMQX_API_SECRET", "wrong")
        cli("devices", "create", "CLI-E2")
        cli("broker", "sync")  # nothing to end: EMQX is not asked
    finally:
        emqx.stop()
