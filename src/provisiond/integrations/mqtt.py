"""What every MQTT connection of provisiond's shares (Mosquitto's dynamic security admin,
the device-event listener, EMQX's REST API over TLS): the broker URL and the TLS context."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit

from provisiond.errors import ConfigurationError


def parse_broker_url(url: str) -> tuple[str, int, str | None, str | None, bool]:
    """host, port, user, password and TLS of ``mqtt[s]://USER:PASSWORD@HOST:PORT``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigurationError(
            "broker__url must look like mqtt://USER:PASSWORD@HOST:PORT (or mqtts://)"
        )
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as err:
        raise ConfigurationError(f"broker__url: {err}") from err
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, user, password, tls


def tls_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
