"""Issued access tokens authenticate their device, and nothing else does."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from provisiond.bootstrap import open_container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.errors import Unauthenticated
from provisiond.services import devices
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import ImportOptions, SecretRow, register_devices
from provisiond.settings import load_settings

OPERATOR = Scope.operator()

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self.secrets.update((serial, secret) for serial, _, _, secret in rows)

    def prepare(self) -> None:
        return None

    def commit(self) -> None:
        pass


def test_every_issued_token_works_and_only_for_its_device(database_url: str) -> None:
    async def scenario() -> None:
        async with open_container(load_settings(database_url=database_url)) as c:
            _, issued = await devices.create_device(
                c.uow(), scope=OPERATOR, spec=DeviceSpec("T1"), actor="t", now=NOW
            )
            sink = Sink()
            await register_devices(
                c.uow(),
                scope=OPERATOR,
                items=read_import(io.BytesIO(b"serial\nT2\nT3\n"), ImportFormat.CSV),
                options=ImportOptions(batch_size=1),
                sink=sink,
                actor="t",
                now=NOW,
            )
            tokens = {"T1": issued.secret, **sink.secrets}
            for serial, token in tokens.items():
                device = await devices.authenticate_device(c.uow(), token=token, now=c.now())
                assert device.serial == serial
            selector, _, verifier = tokens["T2"].partition(".")
            forged = [
                f"{selector}.{verifier[:-1]}{'A' if verifier[-1] != 'A' else 'B'}",
                f"{tokens['T3'].partition('.')[0]}.{verifier}",  # T2's verifier, T3's id
                verifier,
                "",
                "x" * 45,
            ]
            for token in forged:
                with pytest.raises(Unauthenticated):
                    await devices.authenticate_device(c.uow(), token=token, now=c.now())
            await devices.delete_device(c.uow(), scope=OPERATOR, serial="T2", actor="t", now=NOW)
            with pytest.raises(Unauthenticated):
                await devices.authenticate_device(c.uow(), token=tokens["T2"], now=c.now())

    asyncio.run(scenario())
