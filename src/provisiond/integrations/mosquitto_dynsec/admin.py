"""The administrative connection to Mosquitto's dynamic security plugin (aiomqtt).

One connection, opened on first use and again after it drops. Each call publishes one
``{"commands": [...]}`` message whose first command carries a fresh ``correlationData``, and
waits for the response message that echoes it (other administrative clients' answers arrive
on the same topic and are ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from typing import Any

import aiomqtt

from provisiond.errors import BrokerUnavailable
from provisiond.integrations.mosquitto_dynsec import protocol as dynsec
from provisiond.integrations.mqtt import parse_broker_url, tls_context

log = logging.getLogger(__name__)


class DynsecAdmin:
    def __init__(
        self, url: str, *, timeout: float = 10.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._host, self._port, self._user, self._password, wants_tls = parse_broker_url(url)
        if wants_tls and tls is None:
            tls = tls_context(None, None, None)
        self._tls = tls if wants_tls else None
        self._timeout = timeout
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[list[dynsec.Response]]] = {}
        self._lock = asyncio.Lock()  # one connect at a time

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    async def _connect(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            client = aiomqtt.Client(
                self._host,
                self._port,
                username=self._user,
                password=self._password,
                identifier=f"provisiond-admin-{uuid.uuid4().hex[:12]}",
                tls_context=self._tls,
                timeout=self._timeout,
                keepalive=30,
            )
            try:
                await client.__aenter__()
                await client.subscribe(dynsec.RESPONSE_TOPIC, qos=1)
            except (aiomqtt.MqttError, OSError) as err:
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)
                raise BrokerUnavailable(
                    f"cannot reach the broker at {self.address}: {err}"
                ) from err
            self._client = client
            self._reader = asyncio.create_task(self._read(client))
            log.info("connected to the broker's dynamic security API at %s", self.address)
            return client

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    continue
                try:
                    answers = dynsec.decode(bytes(payload))
                except dynsec.DynsecError as err:
                    log.warning("ignored a broker answer: %s", err)
                    continue
                key = answers[0].correlation if answers else None
                future = self._waiting.pop(key, None) if key else None
                if future is not None and not future.done():
                    future.set_result(answers)
        except aiomqtt.MqttError as err:
            log.warning("lost the broker connection (%s): reconnecting on next use", err)
        finally:
            self._drop(client, "the broker connection was lost")

    def _drop(self, client: aiomqtt.Client, why: str) -> None:
        if self._client is client:
            self._client = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrokerUnavailable(why))
        self._waiting.clear()

    async def execute(self, commands: list[dict[str, Any]]) -> list[dynsec.Response]:
        if not commands:
            return []
        client = await self._connect()
        key = uuid.uuid4().hex
        first = {**commands[0], "correlationData": key}
        future: asyncio.Future[list[dynsec.Response]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await client.publish(dynsec.TOPIC, dynsec.encode([first, *commands[1:]]), qos=1)
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError as err:
            raise BrokerUnavailable(
                f"the broker at {self.address} did not answer within {self._timeout:g} s "
                "(is the dynamic security plugin loaded, and may this user use "
                f"{dynsec.TOPIC}?)"
            ) from err
        except aiomqtt.MqttError as err:
            self._drop(client, str(err))
            raise BrokerUnavailable(f"the broker at {self.address}: {err}") from err
        finally:
            self._waiting.pop(key, None)

    async def close(self) -> None:
        client, self._client = self._client, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
