"""The credentials file of an import: LF line ends, so a shell script's `cut` or `read`
gets the token without a carriage return; and what the command says about how the secrets
are kept is true with and without a broker integration that keeps them sealed. The
installed entry point as a real process, the file read by a real shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$")


def provisiond(
    *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisiond", *args],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def shell(script: str, creds: Path) -> str:
    return subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(creds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def imported(env: dict[str, str], tmp_path: Path) -> tuple[Path, str]:
    creds = tmp_path / "creds.csv"
    result = provisiond(
        "devices",
        "import",
        "-",
        "--credentials-out",
        str(creds),
        env=env,
        stdin="serial\nSH-1\nSH-2\n",
    )
    assert result.returncode == 0, result.stderr
    return creds, result.stderr


def test_a_shell_reads_the_token_without_a_carriage_return(sqlite_url: str, tmp_path: Path) -> None:
    creds, _ = imported({"PROVISIOND_DATABASE_URL": sqlite_url}, tmp_path)
    assert b"\r" not in creds.read_bytes()
    tokens = shell('tail -n +2 "$1" | cut -d, -f4', creds).splitlines()
    assert len(tokens) == 2
    assert all(TOKEN.match(t) for t in tokens), tokens
    read = shell(
        'tail -n +2 "$1" | while IFS=, read -r serial id kind secret; do '
        'printf "%s|%s\\n" "$serial" "$secret"; done',
        creds,
    ).splitlines()
    assert [line.split("|")[0] for line in read] == ["SH-1", "SH-2"]
    assert [line.split("|")[1] for line in read] == tokens


def test_without_a_broker_integration_the_secrets_are_hashes_only(
    sqlite_url: str, tmp_path: Path
) -> None:
    _, said = imported({"PROVISIOND_DATABASE_URL": sqlite_url}, tmp_path)
    assert "stored only as hashes" in said
    assert "sealed" not in said


@pytest.fixture
def mosquitto_files(tmp_path: Path) -> dict[str, str]:
    return {
        "PROVISIOND_BROKER__KIND": "mosquitto-files",
        "PROVISIOND_BROKER__PASSWORD_FILE": str(tmp_path / "passwords"),
        "PROVISIOND_BROKER__ACL_FILE": str(tmp_path / "acl"),
        "PROVISIOND_BROKER__RELOAD_COMMAND": "true",
        "PROVISIOND_DEVICE_KEY_PASSPHRASE": "correct horse battery staple",
    }


def test_with_a_broker_integration_the_file_says_they_are_kept_sealed(
    sqlite_url: str, tmp_path: Path, mosquitto_files: dict[str, str]
) -> None:
    creds, said = imported({"PROVISIOND_DATABASE_URL": sqlite_url, **mosquitto_files}, tmp_path)
    assert "only as hashes" not in said
    assert "sealed" in said
    assert "device_key_passphrase" in said
    assert b"\r" not in creds.read_bytes()


def test_with_a_broker_integration_and_no_passphrase_it_says_unencrypted(
    sqlite_url: str, tmp_path: Path, mosquitto_files: dict[str, str]
) -> None:
    del mosquitto_files["PROVISIOND_DEVICE_KEY_PASSPHRASE"]  # development: allowed
    _, said = imported({"PROVISIOND_DATABASE_URL": sqlite_url, **mosquitto_files}, tmp_path)
    assert "only as hashes" not in said
    assert "unencrypted" in said


def test_create_and_rotate_say_the_same(
    sqlite_url: str, tmp_path: Path, mosquitto_files: dict[str, str]
) -> None:
    plain = {"PROVISIOND_DATABASE_URL": sqlite_url}
    made = provisiond("devices", "create", "SH-3", env=plain)
    assert made.returncode == 0, made.stderr
    assert "stored only as a hash" in made.stderr
    sealed = {**plain, **mosquitto_files}
    for args in (("devices", "create", "SH-4"), ("devices", "rotate", "SH-4")):
        result = provisiond(*args, env=sealed)
        assert result.returncode == 0, result.stderr
        assert "only as a hash" not in result.stderr
        assert "sealed" in result.stderr
