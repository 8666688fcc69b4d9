"""Onboarding codes for people and scripts: say what a text is, make one for a device."""

from __future__ import annotations

from dataclasses import dataclass

from provisiond.errors import InvalidInput, Problem, PublicUrlNotConfigured
from provisiond.protocols import codes
from provisiond.protocols.codes import (
    ClaimCode,
    Code,
    DeviceUrl,
    EspProvCode,
    LoRaWanCode,
    MatterQr,
    PayloadError,
    SerialCode,
)

MAKE_FORMATS = ("url", "serial", "lorawan", "esp", "matter")


def describe(text: str) -> Code:
    """The code ``text`` is, or InvalidInput saying what is wrong with it (and where)."""
    try:
        return codes.parse(text)
    except PayloadError as err:
        raise _invalid(err, "text") from None


def _invalid(err: PayloadError, field: str) -> InvalidInput:
    where = f" (at character {err.position + 1})" if err.position is not None else ""
    message = f"this looks like a {codes.FORMATS[err.format_name].TITLE} but {err.message}"
    return InvalidInput(
        message + where,
        problems=[Problem(message + where, field=field)],
        format=err.format_name,
        position=err.position,
    )


def public_url_of(public_url: str | None) -> str:
    """The base of device URLs: the configured ``public_url`` (or ``--base-url``), without
    its trailing slash. With none, PublicUrlNotConfigured saying what to set: a guessed
    address (the bind address, 127.0.0.1) would put useless URLs on every label."""
    if not public_url or not public_url.strip():
        message = (
            "public_url is not set, and a device URL starts with it: set PROVISIOND_PUBLIC_URL "
            "(or public_url in the config file) to the address phones reach this service at, "
            "e.g. https://provision.example.com, or give --base-url; codes without a URL "
            "(--format serial, lorawan, esp, matter) need none"
        )
        problem = Problem("not set (PROVISIOND_PUBLIC_URL)", field="public_url")
        raise PublicUrlNotConfigured(message, problems=[problem])
    return public_url.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class MakeOptions:
    public_url: str | None = None  # the url format's base: the public_url setting
    claim_code: str | None = None
    join_eui: str | None = None
    dev_eui: str | None = None
    profile_id: str = "00000000"
    owner_token: str = ""
    esp_name: str | None = None
    pop: str = ""
    transport: str = "softap"
    username: str = ""
    vendor_id: int = 0xFFF1  # the specification's test vendor
    product_id: int = 0x8000
    discriminator: int | None = None
    passcode: int | None = None
    flow: int = 0
    discovery: int = 4


def make(fmt: str, serial: str, options: MakeOptions) -> Code:
    """The ``fmt`` code of the device ``serial``; every value is checked by parsing the
    rendered text back (so what is printed is what a scanner will read)."""
    try:
        device = SerialCode.parse(serial)
    except PayloadError as err:
        raise InvalidInput(
            f"SERIAL: {err.message}", problems=[Problem(err.message, field="SERIAL")]
        ) from None
    fmt = fmt.strip().lower()
    try:
        if fmt == "serial":
            return device
        if fmt == "url":
            base = public_url_of(options.public_url)
            return DeviceUrl.parse(DeviceUrl(base, device.serial, options.claim_code).render())
        if fmt == "lorawan":
            dev_eui = options.dev_eui or device.serial
            code = LoRaWanCode(
                join_eui=(options.join_eui or "0" * 16).upper(),
                dev_eui=dev_eui.upper(),
                profile_id=options.profile_id.upper(),
                owner_token=options.owner_token,
                serial_number="" if options.dev_eui is None else device.serial,
            )
            return LoRaWanCode.parse(code.render())
        if fmt == "esp":
            name = options.esp_name or EspProvCode.default_name(device.serial)
            return EspProvCode.parse(
                EspProvCode(
                    name=name,
                    transport=options.transport,
                    pop=options.pop,
                    username=options.username,
                ).render()
            )
        if fmt == "matter":
            if options.passcode is None or options.discriminator is None:
                problem = Problem(
                    "a Matter code needs --passcode and --discriminator (the device's own)",
                    field="--passcode",
                )
                raise InvalidInput(str(problem), problems=[problem])
            return MatterQr.parse(
                MatterQr(
                    options.vendor_id,
                    options.product_id,
                    options.discriminator,
                    options.passcode,
                    options.flow,
                    options.discovery,
                ).render()
            )
    except PayloadError as err:
        raise InvalidInput(
            f"{fmt}: {err.message}", problems=[Problem(err.message, field="--format")]
        ) from None
    except (ValueError, OverflowError) as err:
        raise InvalidInput(
            f"{fmt}: {err}", problems=[Problem(str(err), field="--format")]
        ) from None
    allowed = ", ".join(MAKE_FORMATS)
    raise InvalidInput(
        f"--format {fmt!r} is not one of {allowed}",
        problems=[Problem(f"use one of {allowed}", field="--format")],
    )


def scanned_serial(text: str, *, field: str = "serial") -> str:
    """The serial a scanned or typed text names: a serial, a provisiond device URL, or a
    LoRaWAN TR005 code (its DevEUI). Other codes get an error saying what they are."""
    try:
        code = codes.parse(text)
    except PayloadError as err:
        raise _invalid(err, field) from None
    if isinstance(code, SerialCode | DeviceUrl):
        return code.serial
    if isinstance(code, LoRaWanCode):
        return code.dev_eui
    if isinstance(code, ClaimCode):
        return SerialCode.parse(text).serial  # typed into the serial box: take it as one
    what = {
        "esp": "an ESP Wi-Fi provisioning code (it sets up the device's Wi-Fi)",
        "matter-qr": "a Matter pairing code (it adds the device to a smart-home app)",
        "matter-manual": "a Matter pairing code (it adds the device to a smart-home app)",
    }.get(code.FORMAT, f"a {code.TITLE}")
    message = f"this is {what}, not the device's label; scan the label with its serial"
    raise InvalidInput(message, problems=[Problem(message, field=field)], format=code.FORMAT)
