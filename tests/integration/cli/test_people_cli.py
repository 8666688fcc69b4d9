"""`provisiond users invite|reset-password|set-role|move` and `groups rename|move`, on both
backends: links printed without a mail server, mailed through a real one (aiosmtpd)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from provisiond.bootstrap import open_container
from provisiond.services import invitations
from provisiond.settings import load_settings
from tests.integration.cli.conftest import Cli
from tests.support.smtp import smtp_server

PASSWORD = "correct horse battery"


def accept(database_url: str, url: str) -> str:
    async def main() -> str:
        async with open_container(load_settings(database_url=database_url)) as c:
            user = await invitations.accept_invitation(
                c.uow(),
                token=url.rsplit("/", 1)[1],
                password=PASSWORD,
                repeat=PASSWORD,
                now=datetime.now(UTC),
            )
            return f"{user.role} {user.group_path}"

    return asyncio.run(main())


def test_an_invitation_is_printed_without_a_mail_server(cli: Cli) -> None:
    refused = cli(
        "users", "invite", "new@example.com", "--role", "viewer", "--group", "Kanarra", code=3
    )
    assert "public-url-not-configured" in refused.stderr
    done = cli.json(
        "users",
        "invite",
        "new@example.com",
        "--role",
        "viewer",
        "--group",
        "Kanarra",
        "--base-url",
        "https://provision.example",
    )
    assert isinstance(done, dict)
    assert not done["mailed"]
    assert done["url"].startswith("https://provision.example/invitations/")
    assert accept(cli.url, done["url"]) == "viewer Kanarra"
    reset = cli(
        "users", "reset-password", "new@example.com", "--base-url", "https://provision.example"
    )
    assert "/password-reset/" in reset.stdout
    assert "no e-mail server is configured" in reset.stderr


def test_an_invitation_is_mailed_and_the_tree_changes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as inbox:
        for name, value in (
            ("HOST", inbox.host),
            ("PORT", str(inbox.port)),
            ("SECURITY", "none"),
            ("FROM_ADDRESS", "provisiond@example.com"),
        ):
            monkeypatch.setenv(f"PROVISIOND_SMTP__{name}", value)
        monkeypatch.setenv("PROVISIOND_PUBLIC_URL", "https://provision.example")
        done = cli(
            "users",
            "invite",
            "m@example.com",
            "--role",
            "installer",
            "--group",
            "Kanarra/Tekton Health",
        )
        assert "e-mailed to m@example.com" in done.stderr
        (mail,) = inbox.wait_for(1)
        assert accept(cli.url, inbox.link(mail)) == "installer Kanarra/Tekton Health"
    cli("groups", "move", "Kanarra/Tekton Health", "--parent", "Kanarra/Sadler-Isberg")
    cli("groups", "rename", "Kanarra/Sadler-Isberg/Tekton Health", "Tekton")
    users = cli.json("users", "list")
    assert {u["email"]: u["group"] for u in users}[
        "m@example.com"
    ] == "Kanarra/Sadler-Isberg/Tekton"  # type: ignore[index, union-attr]
    cli("users", "set-role", "m@example.com", "admin")
    cli("users", "move", "m@example.com", "--group", "Kanarra")
    cli("groups", "move", "Kanarra/Sadler-Isberg", "--parent", "Kanarra/Sadler-Isberg/West", code=2)


def test_an_operator_wide_admin_is_made_with_its_flag_and_only_as_an_admin(cli: Cli) -> None:
    made = cli.json(
        "users",
        "create",
        "ops@example.com",
        "--operator-wide",
        "--role",
        "admin",
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert isinstance(made, dict)
    assert made["group"] is None
    listed = cli("users", "list").stdout
    assert "ops@example.com" in listed
    assert "(operator-wide)" in listed
    for args, message in (
        (["--role", "admin"], "give --group PATH"),
        (["--role", "admin", "--group", "Kanarra", "--operator-wide"], "not both"),
        (["--role", "installer", "--operator-wide"], "an operator-wide user is an admin"),
    ):
        refused = cli("users", "create", "x@example.com", *args, "--password-stdin",
                      input=f"{PASSWORD}\n", code=2)  # fmt: skip
        assert message in refused.stderr, refused.stderr
    assert "x@example.com" not in cli("users", "list").stdout
    # it stays an admin: another role needs a group first
    refused = cli("users", "set-role", "ops@example.com", "viewer", code=2)
    assert "only an admin can be" in refused.stderr
    cli("users", "move", "ops@example.com", "--group", "Kanarra")
    cli("users", "set-role", "ops@example.com", "viewer")
