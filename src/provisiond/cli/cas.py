"""`provisiond ca …`: certificate authorities that sign devices' CSRs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    actor,
    common_options,
    run,
)
from provisiond.services import certificates
from provisiond.services.certificates import CaInfo

app = typer.Typer(
    help="Certificate authorities that sign devices' X.509 certificates.", no_args_is_help=True
)
NameArg = Annotated[str, typer.Argument(help="The CA's name, e.g. factory-2026.")]
PemFile = Annotated[Path, typer.Option(exists=True, dir_okay=False)]


def _dict(ca: CaInfo) -> dict[str, object]:
    return {
        "name": ca.name,
        "subject": ca.subject,
        "not_after": ca.not_after.isoformat(),
        "fingerprint_sha256": ca.fingerprint,
        "key_encrypted": ca.key_encrypted,
        "can_sign": ca.can_sign,
        "created_at": ca.created_at.isoformat(),
        "certificate": ca.certificate_pem,
    }


def _report(common: Common, ca: CaInfo, what: str) -> None:
    if common.json:
        output.print_json(_dict(ca))
        return
    output.stdout.print(ca.certificate_pem, end="", markup=False, highlight=False)
    note = (
        " (its certificate only: it vouches for devices' certificates, it signs nothing)"
        if not ca.can_sign
        else ""
        if ca.key_encrypted
        else " (its key is stored unencrypted: set ca_key_passphrase)"
    )
    output.success(f"CA {ca.name} {what}: {ca.subject}, valid until {ca.not_after:%Y-%m-%d}{note}")


@app.command("create")
@common_options()
def create(
    common: Common,
    name: NameArg,
    common_name: Annotated[
        str | None, typer.Option("--common-name", help="The CA certificate's subject CN.")
    ] = None,
    days: Annotated[int, typer.Option("--days", help="How long the CA is valid.")] = 3650,
) -> None:
    """Create a CA (EC P-256 key, self-signed) and print its certificate (for brokers)."""
    ca = run(
        common,
        lambda c: certificates.create_ca(
            c.uow(),
            scope=OPERATOR,
            name=name,
            common_name=common_name,
            days=days,
            passphrase=c.settings.ca_passphrase,
            production=c.settings.production,
            actor=actor(),
            now=c.now(),
        ),
    )
    _report(common, ca, "created")


@app.command("import")
@common_options()
def import_(
    common: Common,
    name: NameArg,
    certificate: Annotated[
        Path, typer.Option("--cert", exists=True, dir_okay=False, help="The CA certificate (PEM).")
    ],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            exists=True,
            dir_okay=False,
            help="Its private key (PEM). Without it the CA is registered by its certificate "
            "only (a manufacturer's CA, for a profile's --device-ca).",
        ),
    ] = None,
    key_password_stdin: Annotated[
        bool,
        typer.Option(
            "--key-password-stdin",
            help="The key file is encrypted: read its password from standard input.",
        ),
    ] = False,
) -> None:
    """Import an existing CA: its certificate and the matching private key (or its
    certificate only)."""
    if key is None:
        ca = run(
            common,
            lambda c: certificates.register_ca_certificate(
                c.uow(),
                scope=OPERATOR,
                name=name,
                certificate_pem=certificate.read_text(),
                actor=actor(),
                now=c.now(),
            ),
        )
        _report(common, ca, "registered")
        return
    password = sys.stdin.readline().rstrip("\r\n") if key_password_stdin else None
    ca = run(
        common,
        lambda c: certificates.import_ca(
            c.uow(),
            name=name,
            certificate_pem=certificate.read_text(),
            key_pem=key.read_text(),
            key_password=password,
            passphrase=c.settings.ca_passphrase,
            production=c.settings.production,
            actor=actor(),
            now=c.now(),
        ),
    )
    _report(common, ca, "imported")


@app.command("list")
@common_options()
def list_(common: Common) -> None:
    """Certificate authorities (never their keys)."""
    rows = run(common, lambda c: certificates.list_cas(c.uow()))
    if common.json:
        output.print_json([_dict(ca) for ca in rows])
        return
    output.table(
        ["name", "subject", "valid until", "key"],
        [
            (
                ca.name,
                ca.subject,
                f"{ca.not_after:%Y-%m-%d}",
                "none (certificate only)"
                if not ca.can_sign
                else "encrypted"
                if ca.key_encrypted
                else "unencrypted",
            )
            for ca in rows
        ],
    )


@app.command("show")
@common_options()
def show(
    common: Common,
    name: NameArg,
) -> None:
    """Print a CA's certificate (PEM), e.g. for a broker's cafile."""
    ca = run(common, lambda c: certificates.get_ca(c.uow(), name=name))
    if common.json:
        output.print_json(_dict(ca))
    else:
        output.stdout.print(ca.certificate_pem, end="", markup=False, highlight=False)


@app.command("crl")
@common_options()
def crl(
    common: Common,
    name: NameArg,
) -> None:
    """Print a CA's current CRL (PEM, as Mosquitto's crlfile reads it), made first if it is
    due; e.g. the first file, before Mosquitto starts (serve keeps crl_dir's up to date)."""
    current = run(common, lambda c: c.crl_maker.make(name))
    if common.json:
        output.print_json(
            {
                "name": current.ca_name,
                "number": current.number,
                "this_update": current.this_update.isoformat(),
                "next_update": current.next_update.isoformat(),
                "crl": current.pem,
            }
        )
    else:
        output.stdout.print(current.pem, end="", markup=False, highlight=False)
