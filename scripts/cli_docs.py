"""Write docs/cli.md from the commands' own --help (`python scripts/cli_docs.py`).

tests/integration/cli/test_docs.py fails when docs/cli.md is out of date.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from provisiond.cli.app import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
INTRO = """# provisiond command line

Generated from `--help` by `scripts/cli_docs.py`; do not edit by hand.

Every command that touches the database takes `--database URL` (or `PROVISIOND_DATABASE_URL`)
and `--config FILE` (or `PROVISIOND_CONFIG_FILE`). Listings and `show` take `--json`.
A failure prints `error[CODE]: message` on standard error (with `--json`, the RFC 9457
problem document on standard output) and exits with the code of its class:

| exit code | meaning |
| --- | --- |
| 0 | success |
| 1 | cancelled, or an unexpected failure |
| 2 | invalid input (a bad argument, an import file with problems) |
| 3 | invalid configuration, or a database schema that needs `provisiond db upgrade` |
| 4 | not found (device, group, user, model, token) |
| 5 | conflict (already exists, still in use, not allowed in the device's state) |
| 6 | authentication or permission refused |
| 7 | a service provisiond depends on is unavailable (retry later) |
"""


def commands(group: Any, prefix: list[str]) -> list[list[str]]:
    """Every command path below ``group`` (a Typer/click group), in listing order."""
    out = [prefix]
    ctx = type(group).context_class(group) if hasattr(type(group), "context_class") else None
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):
            out.extend(commands(cmd, [*prefix, name]))
        elif cmd is not None and not getattr(cmd, "hidden", False):
            out.append([*prefix, name])
    return out


def render() -> str:
    os.environ.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    runner = CliRunner()
    root = typer.main.get_command(app)
    parts = [INTRO]
    for path in commands(root, []):
        result = runner.invoke(app, [*path, "--help"], prog_name="provisiond",
                               env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
        title = " ".join(["provisiond", *path])
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        parts.append(f"## {title}\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if DOC.read_text() == render() else 1)
    DOC.write_text(render())
