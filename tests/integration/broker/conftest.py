"""A Mosquitto with the dynamic security plugin per test (skipped without one, failed in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.mosquitto import Broker, available, dynsec_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not available():
        message = "no mosquitto with the dynamic security plugin (apt-get install mosquitto)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with dynsec_broker(tmp_path / "mosquitto") as b:
        yield b
