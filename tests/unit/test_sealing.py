"""Sealed device keys: encrypted with the passphrase, opened only with it."""

from __future__ import annotations

import pytest

from provisiond.errors import ConfigurationError
from provisiond.services.sealing import Sealer


def test_sealed_values_open_with_their_passphrase_only() -> None:
    sealer = Sealer("one passphrase", production=True)
    a, b = sealer.seal("2B7E151628AED2A6"), sealer.seal("2B7E151628AED2A6")
    assert a != b  # a fresh nonce each time
    assert Sealer("one passphrase", production=True).unseal(a) == "2B7E151628AED2A6"
    with pytest.raises(ConfigurationError, match="does not open"):
        Sealer("another", production=True).unseal(a)
    with pytest.raises(ConfigurationError, match="sealed"):
        Sealer(None, production=False).unseal(a)


def test_without_a_passphrase_development_stores_plainly_and_production_refuses() -> None:
    dev = Sealer(None, production=False)
    assert dev.seal("00FF") == "plain:00FF"
    assert dev.unseal("plain:00FF") == "00FF"
    with pytest.raises(ConfigurationError, match="device_key_passphrase"):
        Sealer(None, production=True)
