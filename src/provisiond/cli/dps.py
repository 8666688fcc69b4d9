"""`provisiond dps …`: Azure DPS enrollments (services/enrollments.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from provisiond.cli import output
from provisiond.cli.common import OPERATOR, Common, common_options, run
from provisiond.domain.enrollments import Attestation, Enrollment
from provisiond.services import enrollments
from provisiond.services.container import Container
from provisiond.services.sealing import how_secrets_are_kept

app = typer.Typer(
    help="Azure DPS enrollments: devices running Azure IoT firmware register with provisiond.",
    no_args_is_help=True,
)
HubOpt = Annotated[
    str,
    typer.Option("--hub", help="The broker host the devices are assigned (DPS's assignedHub)."),
]
WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--allocation-webhook",
        help="DPS's custom allocation: a URL that gets each registration and may answer "
        "another host (iotHubHostName) and a payload for the device.",
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The symmetric key (base64) of the Azure enrollment being migrated, so its "
        "devices keep theirs; default: a new one, shown once.",
    ),
]


def _dict(e: Enrollment) -> dict[str, object]:
    return {
        "kind": "group" if e.is_group else "individual",
        "profile": e.profile.name,
        "registration_id": e.serial.lower() if e.serial else None,
        "attestation": e.attestation.value,
        "assigned_hub": e.assigned_hub,
        "allocation_webhook": e.allocation_webhook,
        "reprovision": e.profile.reprovision.value,
        "created_at": e.created_at.isoformat(),
    }


def _report(common: Common, e: Enrollment, key: str | None, kept: str) -> None:
    shown = {**_dict(e), "key": key}
    if common.json:
        output.print_json(shown)
        return
    if key is not None:
        output.stdout.print(key, markup=False, highlight=False)
        output.success(f"the key above is shown once: {kept}")
    output.success(
        f"{shown['kind']} enrollment for profile {e.profile.name} ({e.attestation.value}), "
        f"assigned to {e.assigned_hub}"
    )


@app.command("group")
@common_options()
def group(
    common: Common,
    profile: Annotated[str, typer.Argument(help="The profile the group's devices join.")],
    hub: HubOpt,
    x509: Annotated[
        bool,
        typer.Option(
            "--x509", help="Attest by certificates of the profile's device CA, not by a key."
        ),
    ] = False,
    key: KeyOpt = None,
    webhook: WebhookOpt = None,
) -> None:
    """Make a profile's enrollment group (a symmetric group key, or X.509)."""
    made, secret, kept = run(common, lambda c: _group(c, profile, hub, x509, key, webhook))
    _report(common, made, secret, kept)


async def _group(
    c: Container, profile: str, hub: str, x509: bool, key: str | None, webhook: str | None
) -> tuple[Enrollment, str | None, str]:
    made, secret = await enrollments.enroll_group(
        c.uow(),
        scope=OPERATOR,
        sealer=c.sealer,
        profile_name=profile,
        attestation=Attestation.X509 if x509 else Attestation.SYMMETRIC_KEY,
        hub=hub,
        key=key,
        webhook=webhook,
        now=c.now(),
    )
    return made, secret, how_secrets_are_kept(c.sealer, one=True, hashed=False)


@app.command("device")
@common_options()
def device(
    common: Common,
    serial: Annotated[str, typer.Argument(help="The registered device (its registration id).")],
    profile: Annotated[str, typer.Option("--profile", help="Its profile (reprovisioning).")],
    hub: HubOpt,
    key: KeyOpt = None,
    webhook: WebhookOpt = None,
) -> None:
    """Make a registered device's individual enrollment (its own symmetric key)."""

    async def work(c: Container) -> tuple[Enrollment, str, str]:
        made, secret = await enrollments.enroll_device(
            c.uow(),
            scope=OPERATOR,
            sealer=c.sealer,
            serial=serial,
            profile_name=profile,
            hub=hub,
            key=key,
            webhook=webhook,
            now=c.now(),
        )
        return made, secret, how_secrets_are_kept(c.sealer, one=True, hashed=False)

    made, secret, kept = run(common, work)
    _report(common, made, secret, kept)


@app.command("list")
@common_options()
def list_command(common: Common) -> None:
    """List the enrollments (keys are never shown again)."""
    found = run(common, lambda c: enrollments.list_enrollments(c.uow(), scope=OPERATOR))
    if common.json:
        output.print_json([_dict(e) for e in found])
        return
    output.table(
        ("kind", "profile", "registration id", "attestation", "assigned hub", "reprovision"),
        (
            (
                d["kind"],
                d["profile"],
                d["registration_id"],
                d["attestation"],
                d["assigned_hub"],
                d["reprovision"],
            )
            for d in map(_dict, found)
        ),
    )
