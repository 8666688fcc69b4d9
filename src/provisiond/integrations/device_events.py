"""Device events heard through the user's broker: the claim button, and ThingsBoard-style
claim windows, from devices that speak only MQTT.

Topics, under each device's prefix (``broker__topic_prefix``):

- ``devices/{device_id}/claim/button`` — the claim button was pressed (any payload);
- ``devices/{device_id}/claim`` — ``{"secretKey": "…", "durationMs": 60000}``: the device
  may be claimed with that secret for that long (ThingsBoard's device claiming).

The broker's ACL lets a device publish under its own prefix only, so the topic names the
device. provisiond subscribes with a shared subscription (``$share/provisiond/…``): several
instances split the messages. Malformed messages are counted and dropped; a lost connection
is retried with backoff (1 s doubling to 30 s).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import orjson

from provisiond.domain.broker import device_in_topic, event_filter
from provisiond.errors import ProvisiondError
from provisiond.integrations.mqtt import parse_broker_url

log = logging.getLogger(__name__)
BUTTON = "claim/button"
WINDOW = "claim"
SHARE_GROUP = "provisiond"
MAX_PAYLOAD = 64 * 1024
BACKOFF_MAX = 30.0

Button = Callable[[uuid.UUID], Awaitable[object]]
Window = Callable[[uuid.UUID, object, object], Awaitable[object]]  # secretKey, durationMs


class DeviceEventSubscriber:
    def __init__(
        self,
        url: str,
        template: str,
        *,
        on_button: Button,
        on_window: Window,
        tls: ssl.SSLContext | None = None,
        shared: bool = True,
    ) -> None:
        self._host, self._port, self._user, self._password, wants_tls = parse_broker_url(url)
        self._tls = (tls or ssl.create_default_context()) if wants_tls else None
        self._template = template
        self._on_button = on_button
        self._on_window = on_window
        self._shared = shared
        # connections, received, handled, malformed, refused, errors
        self.counts: Counter[str] = Counter()
        self.subscribed = asyncio.Event()

    def filters(self) -> list[str]:
        plain = [event_filter(self._template, BUTTON), event_filter(self._template, WINDOW)]
        return [f"$share/{SHARE_GROUP}/{f}" for f in plain] if self._shared else plain

    async def run(self) -> None:
        """Subscribe and handle messages until cancelled, reconnecting after failures."""
        delay = 1.0
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    username=self._user,
                    password=self._password,
                    identifier=f"provisiond-events-{uuid.uuid4().hex[:12]}",
                    tls_context=self._tls,
                    keepalive=30,
                ) as client:
                    for topic in self.filters():
                        await client.subscribe(topic, qos=1)
                    log.info("listening for device events on %s:%d", self._host, self._port)
                    self.counts["connections"] += 1
                    self.subscribed.set()
                    delay = 1.0
                    async for message in client.messages:
                        await self.handle(str(message.topic), message.payload)
            except aiomqtt.MqttError as err:
                self.subscribed.clear()
                log.warning(
                    "device events: broker connection lost (%s); retrying in %.0f s", err, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def handle(self, topic: str, payload: Any) -> None:
        """One message; never raises for what a device sent."""
        self.counts["received"] += 1
        body = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        try:
            device_id = device_in_topic(self._template, BUTTON, topic)
            if device_id is not None:
                await self._on_button(device_id)
                self.counts["handled"] += 1
                return
            device_id = device_in_topic(self._template, WINDOW, topic)
            if device_id is None or len(body) > MAX_PAYLOAD:
                self.counts["malformed"] += 1
                return
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError:
                request = None
            if not isinstance(request, dict):
                self.counts["malformed"] += 1
                log.debug("device %s: claim request is not a JSON object", device_id)
                return
            await self._on_window(device_id, request.get("secretKey"), request.get("durationMs"))
            self.counts["handled"] += 1
        except ProvisiondError as err:
            self.counts["refused"] += 1
            log.info("device event on %s refused: %s", topic, err)
        except Exception:
            self.counts["errors"] += 1
            log.exception("device event on %s failed", topic)
