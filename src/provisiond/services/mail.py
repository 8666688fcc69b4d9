"""Sending mail: invitation and password-reset links.

Services take a :class:`Mailer` (a small protocol), so they are tested with a real SMTP
server (aiosmtpd) or none at all. :class:`SmtpMailer` speaks SMTP with the standard
library's :mod:`smtplib`, in a worker thread so the event loop is never blocked; without
``smtp__host`` the :class:`NoMailer` sends nothing and the console shows the link instead.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from provisiond.errors import Unavailable
from provisiond.settings import SmtpSecurity, SmtpSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


class Mailer(Protocol):
    @property
    def configured(self) -> bool:
        """Whether mail is sent at all (False: the caller shows the link instead)."""
        ...

    async def send(self, mail: Mail) -> None:
        """Send one mail, or raise Unavailable saying why it could not be."""
        ...


class NoMailer:
    """No mail server configured: nothing is sent."""

    configured = False

    async def send(self, mail: Mail) -> None:
        raise Unavailable(f"no mail server is configured (smtp__host): not sent to {mail.to}")


class SmtpMailer:
    """Mail through the SMTP server of ``smtp__*``."""

    configured = True

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.host or not settings.from_address:
            raise ValueError("SmtpMailer needs smtp__host and smtp__from_address")
        self._settings = settings
        self._host = settings.host
        self._sender = settings.from_address

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        message.set_content(mail.text)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException) as err:
            # the recipient is not logged as a failure's detail: the audit log has it
            logger.warning("mail to the SMTP server %s failed: %s", self._host, err)
            raise Unavailable(f"the mail server {self._host} did not take the mail: {err}") from err

    def _deliver(self, message: EmailMessage) -> None:
        s = self._settings
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if s.security == SmtpSecurity.TLS:
            client = smtplib.SMTP_SSL(
                self._host, s.port, timeout=s.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(self._host, s.port, timeout=s.timeout_seconds)
        with client:
            if s.security == SmtpSecurity.STARTTLS:
                client.starttls(context=context)  # refused when the server does not offer it
            if s.username:
                client.login(s.username, s.password.get_secret_value() if s.password else "")
            client.send_message(message)


def mailer_for(settings: SmtpSettings) -> Mailer:
    """The mailer of these settings: SMTP when ``smtp__host`` is set, else none."""
    return SmtpMailer(settings) if settings.host else NoMailer()
