"""The command line's fixtures: a CLI bound to a migrated database with a small organisation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from provisiond.cli.app import app

runner = CliRunner()


class Cli:
    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def __call__(self, *args: str, input: str | None = None, code: int = 0) -> Result:
        result = runner.invoke(app, [*args, "--database", self.url], input=input)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, input: str | None = None) -> object:
        return json.loads(self(*args, "--json", input=input).stdout)

    def serials(self, *filters: str) -> list[str]:
        data = self.json("devices", "list", "--all", *filters)
        assert isinstance(data, dict)
        return [d["serial"] for d in data["items"]]


@pytest.fixture
def cli(database_url: str) -> Cli:
    c = Cli(database_url)
    c("groups", "create", "Kanarra/Sadler-Isberg/West/Anaheim")
    c("groups", "create", "Kanarra/Tekton Health")
    c("models", "add", "UNO-2483G", "--description", "gateway")
    c(
        "users",
        "create",
        "tech@example.com",
        "--group",
        "Kanarra/Sadler-Isberg",
        "--role",
        "installer",
        "--password-stdin",
        input="correct horse battery\n",
    )
    return c


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read_creds(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
