"""`provisiond codes …`: what a scanned code is, and the code of a device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import segno
import typer

from provisiond.cli import output
from provisiond.cli.common import Common, common_options, fail, guard
from provisiond.errors import InvalidInput, ProvisiondError
from provisiond.services import codes as service

app = typer.Typer(
    help="Onboarding codes: parse what a label carries, make a device's code.", no_args_is_help=True
)


@app.command("parse")
@common_options(database=False, config=False)
def parse(
    common: Common,
    text: Annotated[str, typer.Argument(help="The text a QR code or label carries.")],
) -> None:
    """Say which format a code is and what it holds (or exactly what is wrong with it)."""
    code = guard(common, lambda: service.describe(text))
    if common.json:
        output.print_json(
            {
                "format": code.FORMAT,
                "title": code.TITLE,
                "canonical": code.render(),
                "fields": code.fields(),
            }
        )
        return
    output.stdout.print(f"{code.TITLE} ({code.FORMAT})", markup=False, highlight=False)
    output.table(
        ["field", "value"],
        [
            (k, "" if v is None else ", ".join(v) if isinstance(v, list) else str(v))
            for k, v in code.fields().items()
        ],
    )


@app.command("make")
@common_options(database=False)
def make(
    common: Common,
    serial: Annotated[str, typer.Argument(help="The device's serial.")],
    fmt: Annotated[
        str, typer.Option("--format", help="url, serial, lorawan, esp or matter.")
    ] = "url",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="url: the address of this service (default: the public_url setting)."
        ),
    ] = None,
    claim_code: Annotated[
        str | None, typer.Option("--claim-code", help="url: add the device's claim code.")
    ] = None,
    join_eui: Annotated[str | None, typer.Option("--join-eui", help="lorawan: JoinEUI.")] = None,
    dev_eui: Annotated[
        str | None, typer.Option("--dev-eui", help="lorawan: DevEUI (default: the serial).")
    ] = None,
    profile_id: Annotated[
        str,
        typer.Option(
            "--profile-id", help="lorawan: vendor id and vendor profile id, 8 hex digits."
        ),
    ] = "00000000",
    owner_token: Annotated[str, typer.Option("--owner-token", help="lorawan: owner token.")] = "",
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="esp: the provisioning name (default: PROV_ and the serial's last 6)."
        ),
    ] = None,
    pop: Annotated[str, typer.Option("--pop", help="esp: proof of possession / password.")] = "",
    transport: Annotated[str, typer.Option("--transport", help="esp: softap or ble.")] = "softap",
    username: Annotated[str, typer.Option("--username", help="esp: security 2 user name.")] = "",
    vendor_id: Annotated[int, typer.Option("--vendor-id", help="matter: vendor id.")] = 0xFFF1,
    product_id: Annotated[int, typer.Option("--product-id", help="matter: product id.")] = 0x8000,
    discriminator: Annotated[
        int | None, typer.Option("--discriminator", help="matter: the 12-bit discriminator.")
    ] = None,
    passcode: Annotated[
        int | None, typer.Option("--passcode", help="matter: the passcode.")
    ] = None,
    flow: Annotated[
        int, typer.Option("--flow", help="matter: 0 standard, 1 user intent, 2 custom.")
    ] = 0,
    svg: Annotated[
        Path | None,
        typer.Option("--svg", help="Also write the QR code as SVG to this file.", dir_okay=False),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Also write the QR code as PNG to this file.", dir_okay=False),
    ] = None,
) -> None:
    """Print a device's onboarding code (and write it as a QR image with --svg/--png)."""
    public_url = base_url or guard(common, lambda: common.settings()).public_url
    options = service.MakeOptions(
        public_url=public_url,
        claim_code=claim_code,
        join_eui=join_eui,
        dev_eui=dev_eui,
        profile_id=profile_id,
        owner_token=owner_token,
        esp_name=name,
        pop=pop,
        transport=transport,
        username=username,
        vendor_id=vendor_id,
        product_id=product_id,
        discriminator=discriminator,
        passcode=passcode,
        flow=flow,
    )
    code = guard(common, lambda: service.make(fmt, serial, options))
    text = code.render()
    try:
        qr = segno.make(text, error="q", micro=False)
        if svg:
            qr.save(str(svg), kind="svg", scale=8, border=4)
        if png:
            qr.save(str(png), kind="png", scale=8, border=4)
    except (OSError, ValueError) as err:
        problem = f"cannot write the QR image: {err}"
        fail(common, InvalidInput(problem))
    except ProvisiondError as err:  # pragma: no cover - segno raises its own errors only
        fail(common, err)
    if common.json:
        output.print_json({"format": code.FORMAT, "text": text, "fields": code.fields()})
    else:
        output.stdout.print(text, markup=False, highlight=False, soft_wrap=True)
