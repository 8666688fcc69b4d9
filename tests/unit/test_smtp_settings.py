"""The smtp__* settings: a host needs a From address; the password is masked; the mailer of
no host sends nothing."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from provisiond.errors import Unavailable
from provisiond.services.mail import Mail, NoMailer, SmtpMailer, mailer_for
from provisiond.settings import Settings, SmtpSecurity


def test_a_host_needs_a_from_address() -> None:
    with pytest.raises(ValidationError, match="smtp__from_address"):
        Settings(database_url="sqlite://", smtp={"host": "mail.example.com"})


def test_the_password_is_masked_and_the_defaults_are_safe() -> None:
    settings = Settings(
        database_url="sqlite://",
        smtp={
            "host": "mail.example.com",
            "from_address": "provisiond@example.com",
            "username": "provisiond",
            "password": "hunter2 hunter2",
        },
    )
    assert settings.smtp.security is SmtpSecurity.STARTTLS
    assert settings.smtp.port == 587
    assert settings.masked()["smtp"]["password"] == "***"
    assert "hunter2" not in repr(settings)
    assert isinstance(mailer_for(settings.smtp), SmtpMailer)


def test_without_a_host_nothing_is_sent() -> None:
    mailer = mailer_for(Settings(database_url="sqlite://").smtp)
    assert isinstance(mailer, NoMailer)
    assert not mailer.configured
    with pytest.raises(Unavailable):
        asyncio.run(mailer.send(Mail("a@example.com", "s", "t")))
