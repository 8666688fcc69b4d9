"""The installed entry point as a real process: stdin input, exit codes, no output on success
but the summary on stderr (so stdout stays clean for pipes)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from provisiond import __version__


def provisiond(*args: str, database: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    return subprocess.run(
        [sys.executable, "-m", "provisiond", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_version() -> None:
    result = provisiond("--version", database="sqlite://")
    assert (result.returncode, result.stdout.strip()) == (0, f"provisiond {__version__}")


def test_import_from_standard_input_through_the_environment_url(
    sqlite_url: str, tmp_path: Path
) -> None:
    creds = tmp_path / "creds.csv"
    result = provisiond(
        "devices",
        "import",
        "-",
        "--credentials-out",
        str(creds),
        database=sqlite_url,
        stdin="serial,colour\nP1,red\nP2,blue\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("imported 2 devices (0 claimed, 0 skipped)")
    with creds.open(newline="") as f:
        assert [r["serial"] for r in csv.DictReader(f)] == ["P1", "P2"]
    listed = provisiond("devices", "list", "--json", "--tag", "colour=blue", database=sqlite_url)
    assert [d["serial"] for d in json.loads(listed.stdout)["items"]] == ["P2"]


def test_failure_exit_code_and_message(sqlite_url: str) -> None:
    result = provisiond("devices", "show", "missing", database=sqlite_url)
    assert result.returncode == 4
    assert result.stderr == "error[device-not-found]: no device MISSING\n"
    debug = provisiond("devices", "show", "missing", "--debug", database=sqlite_url)
    assert "Traceback" in debug.stderr
    assert "DeviceNotFound" in debug.stderr


def test_progress_bar_on_a_terminal_only(sqlite_url: str, tmp_path: Path) -> None:
    import pty

    src = tmp_path / "batch.csv"
    src.write_text("serial\n" + "".join(f"T{n}\n" for n in range(2000)))
    controller, terminal = pty.openpty()
    env = {**os.environ, "PROVISIOND_DATABASE_URL": sqlite_url, "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisiond",
            "devices",
            "import",
            str(src),
            "--credentials-out",
            str(tmp_path / "creds.csv"),
        ],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    seen = b""
    while True:  # read the terminal until the process closes it
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=120) == 0
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert "importing" in text  # the bar, drawn on the terminal
    assert "imported 2,000 devices" in text
    assert process.stdout is not None
    assert process.stdout.read() == b""
    # and none without a terminal (the other tests capture stderr as a pipe)
    plain = provisiond(
        "devices",
        "import",
        str(src),
        "--credentials-out",
        str(tmp_path / "again.csv"),
        "--skip-existing",
        database=sqlite_url,
    )
    assert "importing" not in plain.stderr
    assert plain.stderr.startswith("imported 0 devices (0 claimed, 2,000 skipped)")
