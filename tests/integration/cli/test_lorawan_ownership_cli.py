"""`provisiond lorawan …` and `devices show` when an end device provisiond did not create is in
a device's way: the reason is shown where operators look, `lorawan adopt` takes it over (or
says why not), and LoRaWAN 1.1 keys are given with `lorawan replace`. On both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli.conftest import Cli, write
from tests.support.tts_standin import tts_standin

SERIAL = "0018B20000000201"
END_DEVICE = "eui-0018b20000000201"
ROWS = (
    "Device EUI, Join EUI, Application Key\n"
    f"{SERIAL}, 70B3D57ED0000010, 2B7E151628AED2A6ABF7158809CF4F3C\n"
)


def test_a_device_in_conflict_is_shown_and_adopted_from_the_cli(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tts_standin({"kanarra-meters"}) as standin:
        for name, value in (
            ("URL", standin.url),
            ("API_KEY", standin.api_key),
            ("APPLICATION_ID", "kanarra-meters"),
            ("FREQUENCY_PLAN_ID", "EU_863_870_TTN"),
        ):
            monkeypatch.setenv(f"PROVISIOND_TTS__{name}", value)
        standin.plant(
            END_DEVICE,
            dev_eui=SERIAL,
            join_eui="70B3D57ED0000010",
            name="Field trial",
            attributes={"owner": "field-team"},
        )
        cli("lorawan", "adopt", SERIAL, code=4)  # no such device yet
        cli(
            "devices",
            "import",
            str(write(tmp_path / "m.csv", ROWS)),
            "--credentials-out",
            str(tmp_path / "c.csv"),
            "--group",
            "Kanarra/Tekton Health",
        )

        sync = cli("lorawan", "sync", code=7)  # something waits for an operator: not 0
        assert "waiting for an operator" in sync.stdout
        assert f"provisiond lorawan adopt {SERIAL}" in sync.stderr
        status = cli.json("lorawan", "status")
        assert isinstance(status, dict)
        [row] = status["devices"]
        assert (row["serial"], row["status"], row["end_device_id"], row["foreign_end_device"]) == (
            SERIAL,
            "conflict",
            END_DEVICE,
            f"kanarra-meters/{END_DEVICE}",
        )
        assert "provisiond did not create it" in row["error"]
        assert status["pending"] == []  # waits for an operator, not for a retry
        table = cli("lorawan", "status").stdout
        assert SERIAL in table
        assert "conflict" in table
        shown = cli.json("devices", "show", SERIAL)
        assert isinstance(shown, dict)
        tts = shown["the_things_stack"]
        assert (tts["status"], tts["foreign_end_device"]) == (
            "conflict",
            f"kanarra-meters/{END_DEVICE}",
        )
        assert f"provisiond lorawan adopt {SERIAL}" in tts["error"]
        assert "conflict" in cli("devices", "show", SERIAL).stdout
        assert "lorawan.conflict" in [e["type"] for e in shown["events"]]

        adopted = cli.json("lorawan", "adopt", SERIAL)
        assert adopted == {
            "serial": SERIAL,
            "application_id": "kanarra-meters",
            "end_device_id": END_DEVICE,
            "status": "registered",
            "error": None,
        }
        shown = cli.json("devices", "show", SERIAL)
        assert isinstance(shown, dict)
        assert (shown["the_things_stack"]["status"], shown["the_things_stack"]["origin"]) == (
            "registered",
            "adopted",
        )
        adoption = next(e for e in shown["events"] if e["type"] == "lorawan.adopted")
        assert adoption["actor"].startswith("cli:")
        again = cli("lorawan", "adopt", SERIAL, code=5)
        assert "error[nothing-to-adopt]" in again.stderr
        assert "is provisiond's already" in again.stderr

        # LoRaWAN 1.1 keys: the NwkKey on the line after the AppKey
        cli(
            "lorawan",
            "replace",
            SERIAL,
            "--dev-eui",
            "0018B20000000299",
            "--join-eui",
            "70B3D57ED0000010",
            "--app-key-stdin",
            "--nwk-key-stdin",
            input="000102030405060708090A0B0C0D0E0F\n00112233445566778899AABBCCDDEEFF\n",
        )
        bad = cli(
            "lorawan",
            "replace",
            SERIAL,
            "--dev-eui",
            "0018B20000000300",
            "--join-eui",
            "70B3D57ED0000010",
            "--app-key-stdin",
            "--nwk-key-stdin",
            input="000102030405060708090A0B0C0D0E0F\n\n",
            code=2,
        )
        assert "nwk_key" in bad.stderr
