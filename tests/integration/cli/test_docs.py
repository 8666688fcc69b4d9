"""The documentation keeps up with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from provisiond.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_cli_reference_is_generated_from_the_current_help() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/cli_docs.py", "--check"], cwd=ROOT, check=False
    )
    assert result.returncode == 0, "docs/cli.md is stale: run `python scripts/cli_docs.py`"


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    names = set(Settings.model_fields)
    for name, info in Settings.model_fields.items():  # nested groups: broker__kind …
        nested = getattr(info.annotation, "model_fields", None)
        if nested:
            names |= {f"{name}__{sub}" for sub in nested}
    assert documented == names
