"""`provisiond serve --aws-port` refuses to start without the listener's certificate and
key (AWS IoT devices speak MQTT over TLS only), naming the settings to set.

In a process of its own: `serve` configures the whole process's logging before it checks
its settings, which in the test process would point every later test's log lines at this
invocation's closed output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_serve_needs_the_aws_listeners_certificate(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'p.db'}"
    command = ["serve", "--database", database, "--migrate", "--aws-port", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "provisiond", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "aws__tls_cert" in output
    assert "aws__tls_key" in output
