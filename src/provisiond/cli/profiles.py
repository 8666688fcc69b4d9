"""`provisiond profiles …`: how devices with one generic firmware register themselves."""

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
    fail,
    run,
)
from provisiond.domain.limits import DEVICE_SECRET_MIN_LENGTH_DEFAULT
from provisiond.domain.profiles import (
    DEFAULT_RATE_PER_MINUTE,
    DEFAULT_SOURCE_RATE_PER_MINUTE,
    ProfileChanges,
    ProfileSpec,
)
from provisiond.errors import InvalidInput, Problem
from provisiond.services import profiles as service
from provisiond.services.paging import every_page
from provisiond.services.profiles import ProfileWithSecret

app = typer.Typer(
    help="Provisioning profiles: the key and secret that generic firmware "
    "presents to register itself.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The profile's name, e.g. gateways-2026.")]
SecretOpt = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help="The provision secret (default: 20 random letters and digits). "
        "Visible to other users of this machine: prefer --secret-stdin.",
    ),
]
SecretStdinOpt = Annotated[
    bool, typer.Option("--secret-stdin", help="Read the provision secret from standard input.")
]


def _secret(common: Common, secret: str | None, from_stdin: bool) -> str | None:
    if not from_stdin:
        return secret
    if secret is not None:
        problem = Problem("give --secret or --secret-stdin, not both", field="--secret")
        fail(common, InvalidInput(str(problem), problems=[problem]))
    return sys.stdin.readline().rstrip("\r\n")


def _print_with_secret(common: Common, made: ProfileWithSecret, what: str) -> None:
    if common.json:
        output.print_json({**output.profile_dict(made.profile), "secret": made.secret})
        return
    output.stdout.print(
        f"provisionDeviceKey     {made.profile.key}\nprovisionDeviceSecret  {made.secret}",
        markup=False,
        highlight=False,
    )
    output.success(
        f"profile {made.profile.name} {what}: the secret is shown once and stored only as a hash"
    )


_REPROVISION_HELP = (
    "Whether a device already provisioned may provision again: never "
    "(ThingsBoard's contract), with-proof (a repeat proving it is the first "
    "requester), factory-reset (also new credentials for a device that "
    "proves itself)."
)
_MIN_LENGTH_HELP = "The shortest token or MQTT password a device may choose (1 to 128)."
ReprovisionOpt = Annotated[str, typer.Option("--reprovision", help=_REPROVISION_HELP)]
SecretMinOpt = Annotated[int, typer.Option("--device-secret-min-length", help=_MIN_LENGTH_HELP)]
DeviceCaOpt = Annotated[
    str | None,
    typer.Option(
        "--device-ca",
        help="A CA (e.g. the manufacturer's, `ca import --cert` only) whose "
        "certificates devices may bring without a signature proof.",
    ),
]


@app.command("create")
@common_options()
def create(
    common: Common,
    name: NameArg,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="allow-create: unknown devices are created; pre-provisioned: only "
            "devices registered beforehand (import) may provision.",
        ),
    ] = "allow-create",
    key: Annotated[
        str | None,
        typer.Option("--key", help="The provision key (default: 20 random letters and digits)."),
    ] = None,
    secret: SecretOpt = None,
    secret_stdin: SecretStdinOpt = False,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Devices this profile creates are claimed for this group."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The model of devices this profile creates.")
    ] = None,
    credentials: Annotated[
        list[str] | None,
        typer.Option(
            "--credentials",
            help="Credential types handed out: access-token, mqtt-basic, x509; "
            "repeat or comma-separate, the first is the default.",
        ),
    ] = None,
    rate_limit: Annotated[
        int,
        typer.Option(
            "--rate-limit", help="Provisioning requests per minute, all sources together."
        ),
    ] = DEFAULT_RATE_PER_MINUTE,
    source_rate_limit: Annotated[
        int,
        typer.Option(
            "--source-rate-limit", help="Provisioning requests per minute from one address."
        ),
    ] = DEFAULT_SOURCE_RATE_PER_MINUTE,
    jwt_public_key: Annotated[
        Path | None,
        typer.Option(
            "--jwt-public-key",
            help="PEM file of the ES256 (P-256) public key that signs "
            "registration tokens; without it they are HS256.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    ca: Annotated[
        str | None,
        typer.Option("--ca", help="The certificate authority that signs devices' CSRs (x509)."),
    ] = None,
    certificate_days: Annotated[
        int, typer.Option("--certificate-days", help="Lifetime of the certificates it signs.")
    ] = 365,
    claim_proof: Annotated[
        str | None,
        typer.Option(
            "--claim-proof",
            help="How people prove they hold a device to claim it: none, "
            "button, code or device-secret (default: the instance's "
            "claims__proof setting).",
        ),
    ] = None,
    claim_window: Annotated[
        int | None,
        typer.Option(
            "--claim-window",
            help="Seconds a claim stays open for its proof and finish "
            "(default: the instance's claims__window_seconds).",
        ),
    ] = None,
    release_policy: Annotated[
        str,
        typer.Option(
            "--release-policy",
            help="keep: a released device keeps its tags and history; "
            "reset: they are cleared for the next owner.",
        ),
    ] = "keep",
    tts_application: Annotated[
        str | None,
        typer.Option(
            "--tts-application",
            help="The Things Stack application its LoRaWAN devices are "
            "registered in (default: tts__application_id).",
        ),
    ] = None,
    frequency_plan: Annotated[
        str | None,
        typer.Option(
            "--frequency-plan",
            help="LoRaWAN frequency plan, e.g. EU_863_870_TTN (default: tts__frequency_plan_id).",
        ),
    ] = None,
    lorawan_version: Annotated[
        str | None, typer.Option("--lorawan-version", help="LoRaWAN MAC version, e.g. MAC_V1_0_3.")
    ] = None,
    lorawan_phy_version: Annotated[
        str | None,
        typer.Option("--lorawan-phy-version", help="Regional parameters, e.g. RP001_V1_0_3_REV_A."),
    ] = None,
    class_b: Annotated[
        bool | None,
        typer.Option("--class-b/--no-class-b", help="Its LoRaWAN devices support class B."),
    ] = None,
    class_c: Annotated[
        bool | None,
        typer.Option("--class-c/--no-class-c", help="Its LoRaWAN devices support class C."),
    ] = None,
    reprovision: ReprovisionOpt = "never",
    device_secret_min_length: SecretMinOpt = DEVICE_SECRET_MIN_LENGTH_DEFAULT,
    device_ca: DeviceCaOpt = None,
) -> None:
    """Create a provisioning profile and print its key and secret (the secret only now)."""
    given_secret = _secret(common, secret, secret_stdin)
    spec = ProfileSpec(
        name,
        strategy,
        key=key,
        secret=given_secret,
        group=group,
        model=model,
        credentials=credentials or (),
        rate_per_minute=rate_limit,
        source_rate_per_minute=source_rate_limit,
        jwt_public_key=jwt_public_key.read_text() if jwt_public_key else None,
        ca=ca,
        certificate_days=certificate_days,
        claim_proof=claim_proof,
        claim_window=claim_window,
        release_policy=release_policy,
        lorawan={
            "application_id": tts_application,
            "frequency_plan_id": frequency_plan,
            "lorawan_version": lorawan_version,
            "lorawan_phy_version": lorawan_phy_version,
            "supports_class_b": class_b,
            "supports_class_c": class_c,
        },
        reprovision=reprovision,
        device_secret_min_length=device_secret_min_length,
        device_ca=device_ca,
    )
    made = run(
        common,
        lambda c: service.create_profile(
            c.uow(), scope=OPERATOR, spec=spec, sealer=c.sealer, actor=actor(), now=c.now()
        ),
    )
    _print_with_secret(common, made, "created")


@app.command("update")
@common_options()
def update(
    common: Common,
    name: NameArg,
    reprovision: Annotated[
        str | None, typer.Option("--reprovision", help=_REPROVISION_HELP)
    ] = None,
    device_secret_min_length: Annotated[
        int | None, typer.Option("--device-secret-min-length", help=_MIN_LENGTH_HELP)
    ] = None,
    device_ca: DeviceCaOpt = None,
    no_device_ca: Annotated[
        bool,
        typer.Option(
            "--no-device-ca",
            help="Forget the device CA: brought certificates then need a signature proof.",
        ),
    ] = False,
    ca: Annotated[
        str | None,
        typer.Option("--ca", help="The certificate authority that signs devices' CSRs (x509)."),
    ] = None,
    no_ca: Annotated[
        bool, typer.Option("--no-ca", help="Forget the signing CA: CSRs are then refused.")
    ] = False,
    certificate_days: Annotated[
        int | None,
        typer.Option("--certificate-days", help="Lifetime of the certificates it signs."),
    ] = None,
    claim_proof: Annotated[
        str | None,
        typer.Option(
            "--claim-proof",
            help="How people prove they hold a device: none, button, code, device-secret.",
        ),
    ] = None,
    default_claim_proof: Annotated[
        bool,
        typer.Option(
            "--default-claim-proof", help="Claims need the instance's proof (claims__proof)."
        ),
    ] = False,
    claim_window: Annotated[
        int | None,
        typer.Option("--claim-window", help="Seconds a claim stays open for its proof and finish."),
    ] = None,
    default_claim_window: Annotated[
        bool,
        typer.Option(
            "--default-claim-window",
            help="Claims stay open for the instance's window (claims__window_seconds).",
        ),
    ] = False,
    release_policy: Annotated[
        str | None,
        typer.Option(
            "--release-policy",
            help="keep: a released device keeps its tags and history; reset: they are cleared.",
        ),
    ] = None,
) -> None:
    """Change a profile's identity rules, CAs and claim rules (what is not given stays)."""
    changes = ProfileChanges(
        reprovision,
        device_secret_min_length,
        device_ca,
        clear_device_ca=no_device_ca,
        ca=ca,
        clear_ca=no_ca,
        certificate_days=certificate_days,
        claim_proof=claim_proof,
        clear_claim_proof=default_claim_proof,
        claim_window=claim_window,
        clear_claim_window=default_claim_window,
        release_policy=release_policy,
    )
    p = run(
        common,
        lambda c: service.update_profile(
            c.uow(), scope=OPERATOR, name=name, changes=changes, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.profile_dict(p))
    else:
        proof = p.claim_proof.value if p.claim_proof else "the default"
        output.success(
            f"profile {p.name}: reprovision {p.reprovision.value}, devices may "
            f"choose secrets of {p.device_secret_min_length}+ characters, device CA "
            f"{p.device_ca_name or 'none'}, signing CA {p.ca_name or 'none'}, claim proof "
            f"{proof}, release policy {p.release_policy.value}"
        )


@app.command("list")
@common_options()
def list_(common: Common) -> None:
    """Provisioning profiles (never their secrets)."""
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: service.list_profiles(
                c.uow(), scope=OPERATOR, cursor=cursor, limit=limit
            )
        ),
    )
    if common.json:
        output.print_json([output.profile_dict(p) for p in rows])
        return
    output.table(
        ["name", "key", "strategy", "group", "model", "credentials", "enabled"],
        [
            (
                p.name,
                p.key,
                p.strategy.value,
                p.group_path or "",
                p.model or "",
                ",".join(t.value for t in p.credential_types),
                "yes" if p.enabled else "no",
            )
            for p in rows
        ],
    )


@app.command("show")
@common_options()
def show(
    common: Common,
    name: NameArg,
) -> None:
    """One profile (never its secret)."""
    p = run(common, lambda c: service.get_profile(c.uow(), scope=OPERATOR, name=name))
    if common.json:
        output.print_json(output.profile_dict(p))
        return
    output.table(
        ["field", "value"],
        [
            ("name", p.name),
            ("key", p.key),
            ("strategy", p.strategy.value),
            ("group", p.group_path or "-"),
            ("model", p.model or "-"),
            ("credentials", ", ".join(t.value for t in p.credential_types)),
            ("rate limit", f"{p.rate_per_minute}/min, {p.source_rate_per_minute}/min per address"),
            (
                "registration tokens",
                "ES256 (public key registered)"
                if p.jwt_public_key
                else "HS256 (keyed with the SHA-256 of the secret)",
            ),
            (
                "certificates",
                f"signed by CA {p.ca_name}, {p.certificate_days} days"
                if p.ca_name
                else "no CA: devices may register certificates they have",
            ),
            ("device CA", p.device_ca_name or "- (brought certificates need a signature proof)"),
            ("reprovision", p.reprovision.value),
            ("device secrets", f"at least {p.device_secret_min_length} characters"),
            ("enabled", "yes" if p.enabled else "no"),
            ("created", output.short_time(p.created_at)),
            ("secret set", output.short_time(p.secret_rotated_at)),
        ],
    )


def _set_enabled(common: Common, name: str, enabled: bool) -> None:
    p = run(
        common,
        lambda c: service.set_profile_enabled(
            c.uow(), scope=OPERATOR, name=name, enabled=enabled, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.profile_dict(p))
    else:
        output.success(f"profile {p.name} is {'enabled' if p.enabled else 'disabled'}")


@app.command("disable")
@common_options()
def disable(
    common: Common,
    name: NameArg,
) -> None:
    """Stop a profile: devices presenting its key and secret are refused."""
    _set_enabled(common, name, False)


@app.command("enable")
@common_options()
def enable(
    common: Common,
    name: NameArg,
) -> None:
    """Let a disabled profile provision again."""
    _set_enabled(common, name, True)


@app.command("rotate-secret")
@common_options()
def rotate_secret(
    common: Common,
    name: NameArg,
    secret: SecretOpt = None,
    secret_stdin: SecretStdinOpt = False,
) -> None:
    """Give a profile a new secret; the old one stops working at once."""
    given_secret = _secret(common, secret, secret_stdin)
    made = run(
        common,
        lambda c: service.rotate_profile_secret(
            c.uow(),
            scope=OPERATOR,
            name=name,
            secret=given_secret,
            sealer=c.sealer,
            actor=actor(),
            now=c.now(),
        ),
    )
    _print_with_secret(common, made, "has a new secret")


@app.command("jwt-key")
@common_options()
def jwt_key(
    common: Common,
    name: NameArg,
    public_key: Annotated[
        Path | None,
        typer.Argument(
            help="PEM file of the ES256 (P-256) public key.", exists=True, dir_okay=False
        ),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Forget the key: registration tokens are then HS256.")
    ] = False,
) -> None:
    """Register the public key that signs this profile's registration tokens (ES256)."""
    if (public_key is None) == (not remove):
        problem = Problem("give a public key file or --remove", field="public_key")
        fail(common, InvalidInput(str(problem), problems=[problem]))
    pem = public_key.read_text() if public_key else None
    p = run(
        common,
        lambda c: service.set_profile_jwt_key(
            c.uow(), scope=OPERATOR, name=name, public_key=pem, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.profile_dict(p))
    else:
        output.success(
            f"profile {p.name} accepts "
            f"{'ES256' if p.jwt_public_key else 'HS256'} registration tokens"
        )
