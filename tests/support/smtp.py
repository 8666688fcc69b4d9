"""A real SMTP server on loopback (aiosmtpd) that keeps the mails it receives."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.integration.web.conftest import free_port


@dataclass
class Inbox:
    host: str
    port: int
    mails: list[EmailMessage] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.mails.append(message)
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, n: int = 1, timeout: float = 10) -> list[EmailMessage]:
        """The mails once ``n`` have arrived (woken by their arrival, not by polling)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.mails) >= n, timeout), (
                f"{len(self.mails)} of {n} mails arrived"
            )
            return list(self.mails)

    def link(self, mail: EmailMessage) -> str:
        body = mail.get_body(("plain",))
        assert body is not None
        found = re.search(r"https?://\S+/(?:invitations|password-reset)/\S+", body.get_content())
        assert found, body.get_content()
        return found.group(0)


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox("127.0.0.1", free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
