"""`provisiond serve --aws-port` refuses to start without the listener's certificate and
key (AWS IoT devices speak MQTT over TLS only), naming the settings to set."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from provisiond.cli.app import app as cli_app


def test_serve_needs_the_aws_listeners_certificate(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'p.db'}"
    result = CliRunner().invoke(
        cli_app, ["serve", "--database", database, "--migrate", "--aws-port", "0"]
    )
    assert result.exit_code == 3, result.output
    assert "aws__tls_cert" in result.output
    assert "aws__tls_key" in result.output
