"""Onboarding code formats: published vectors, round trips, totality on any text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain.claims import new_claim_code
from provisiond.protocols import codes
from provisiond.protocols.codes import (
    ClaimCode,
    DeviceUrl,
    EspProvCode,
    LoRaWanCode,
    MatterManualCode,
    MatterQr,
    PayloadError,
    SerialCode,
)
from provisiond.protocols.codes.matter import INVALID_PASSCODES, base38_decode, base38_encode

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def vectors(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    assert data["source"]  # every vector file names where it comes from
    return data


MATTER = vectors("matter_setup_payload.json")["cases"]
LORAWAN = vectors("lorawan_tr005.json")
ESP = vectors("esp_prov_qr.json")


@pytest.mark.parametrize("case", MATTER, ids=[c["qr"] for c in MATTER])
def test_matter_vectors_parse_and_render(case: dict[str, Any]) -> None:
    fields = {
        k: case[k]
        for k in ("discriminator", "passcode", "discovery", "flow", "vendor_id", "product_id")
    }
    assert MatterQr(**fields).render() == case["qr"]
    parsed = codes.parse(case["qr"])
    assert parsed == MatterQr(**fields)
    assert isinstance(parsed, MatterQr)
    assert parsed.manual().render() == case["manual"]
    manual = codes.parse(case["manual"])
    assert isinstance(manual, MatterManualCode)
    assert (manual.short_discriminator, manual.passcode) == (
        case["discriminator"] >> 8,
        case["passcode"],
    )
    if case["flow"] != 0:
        assert (manual.vendor_id, manual.product_id) == (case["vendor_id"], case["product_id"])
    assert manual.render() == case["manual"]


@pytest.mark.parametrize("case", LORAWAN["valid"], ids=lambda c: c["text"][:40])
def test_lorawan_vectors(case: dict[str, Any]) -> None:
    parsed = codes.parse(case["text"])
    assert isinstance(parsed, LoRaWanCode)
    for key in (
        "join_eui",
        "dev_eui",
        "profile_id",
        "owner_token",
        "serial_number",
        "proprietary",
        "checksum",
    ):
        assert getattr(parsed, key) == case.get(key, "")
    assert parsed.render() == case["canonical"]


@pytest.mark.parametrize("text", LORAWAN["invalid"])
def test_lorawan_invalid_vectors(text: str) -> None:
    with pytest.raises(PayloadError) as err:
        codes.parse(text)
    assert err.value.format_name == "lorawan"


@pytest.mark.parametrize("case", ESP["valid"], ids=lambda c: c["text"][:40])
def test_esp_vectors(case: dict[str, Any]) -> None:
    parsed = codes.parse(case["text"])
    assert parsed == EspProvCode(
        name=case["name"], transport=case["transport"], pop=case["pop"], username=case["username"]
    )


@pytest.mark.parametrize("text", ESP["invalid"])
def test_esp_invalid_vectors(text: str) -> None:
    with pytest.raises(PayloadError) as err:
        codes.parse(text)
    assert err.value.format_name == "esp"


def test_errors_say_what_and_where() -> None:
    cases = {
        "MT:00000CQM00KA0648G0": ("matter-qr", "cannot be whole bytes"),
        "MT:00000CQM00KA0648G0$": ("matter-qr", "'$' is not a base-38 character"),
        "LW:D0:42FF:4242FFFFFFFFFFFF:42FFFF42": ("lorawan", "JoinEUI must be 16"),
        "LW:D0:42FFFFFFFFFFFFFG:4242FFFFFFFFFFFF:42FFFF42": ("lorawan", "'G'"),
        "LW:D9:": ("lorawan", "schema 'D9' is unknown"),
        "34970112333": ("serial", ""),  # a wrong check digit: not a manual code
        '{"ver":"v1","transport":"ble"}': ("esp", 'no "name"'),
        '{"ver":"v1","name":"X","transport":"wifi"}': ("esp", "transport 'wifi'"),
        "https://example.com/devices/1": ("url", "no /d/{serial}"),
    }
    for text, (fmt, message) in cases.items():
        if fmt == "serial":
            assert isinstance(codes.parse(text), SerialCode)
            continue
        with pytest.raises(PayloadError) as err:
            codes.parse(text)
        assert err.value.format_name == fmt
        assert message in str(err.value)
    with pytest.raises(PayloadError) as located:
        codes.parse("LW:D0:42FFFFFFFFFFFFFG:4242FFFFFFFFFFFF:42FFFF42")
    assert located.value.position == 21
    with pytest.raises(PayloadError, match="check digit"):
        MatterManualCode.parse("34970112333")


def test_esp_codes_from_snprintf_are_read_tolerantly() -> None:
    strict = codes.parse('{"ver":"v1","name":"PROV_1A2B3C","pop":"abcd1234","transport":"softap"}')
    assert strict == EspProvCode(name="PROV_1A2B3C", transport="softap", pop="abcd1234")
    # a quote and a backslash in the name, unescaped, as firmware's snprintf writes them
    loose = codes.parse(
        '{"ver":"v1","name":"Bob"s lamp\\","username":"wifiprov","pop":"s3cr3t","transport":"ble"}'
    )
    assert isinstance(loose, EspProvCode)
    assert (loose.name, loose.username, loose.pop) == ('Bob"s lamp\\', "wifiprov", "s3cr3t")
    assert loose.fields()["security"] == "2"
    assert codes.parse(loose.render()) == loose


def test_device_url_and_claim_code_and_serial() -> None:
    url = codes.parse("HTTPS://Prov.Example.com/base/d/gen%207?code=7kq4-mz2x-9hrd")
    assert url == DeviceUrl("https://prov.example.com/base", "GEN7", "7KQ4-MZ2X-9HRD")
    assert url.render() == "https://prov.example.com/base/d/GEN7?code=7KQ4-MZ2X-9HRD"
    code = new_claim_code()
    assert codes.parse(code) == ClaimCode(code.replace("-", ""))
    assert codes.parse(" 70b3 d57e-d000 0001 ") == SerialCode("70B3D57E-D0000001")
    with pytest.raises(PayloadError, match="serial contains"):
        codes.parse("no/slashes")


@given(st.binary(max_size=40))
def test_base38_round_trips(data: bytes) -> None:
    assert base38_decode(base38_encode(data)) == data


matter_qrs = st.builds(
    MatterQr,
    vendor_id=st.integers(0, 0xFFFF),
    product_id=st.integers(0, 0xFFFF),
    discriminator=st.integers(0, 0xFFF),
    passcode=st.integers(1, 99999998).filter(lambda p: p not in INVALID_PASSCODES),
    flow=st.integers(0, 2),
    discovery=st.integers(0, 0xFF),
    tlv=st.binary(max_size=12),
)


@given(matter_qrs)
def test_matter_qr_round_trips(code: MatterQr) -> None:
    text = code.render()
    assert MatterQr.parse(text) == code
    assert codes.parse(text) == code
    manual = code.manual()
    assert MatterManualCode.parse(manual.render()) == manual
    assert codes.parse(manual.render()) == manual


ext = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), max_size=12
)
eui = st.text("0123456789ABCDEF", min_size=16, max_size=16)
lorawans = st.builds(
    LoRaWanCode,
    join_eui=eui,
    dev_eui=eui,
    profile_id=st.text("0123456789ABCDEF", min_size=8, max_size=8),
    owner_token=ext,
    serial_number=ext,
    proprietary=ext,
    checksum=ext,
)


@given(lorawans)
def test_lorawan_round_trips(code: LoRaWanCode) -> None:
    text = code.render()
    assert codes.parse(text) == code
    assert codes.parse(text).render() == text  # canonical


esp_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)
esps = st.builds(
    EspProvCode,
    name=esp_text.filter(bool),
    transport=st.sampled_from(["softap", "ble"]),
    pop=esp_text,
    username=esp_text,
)


@given(esps)
def test_esp_round_trips(code: EspProvCode) -> None:
    assert codes.parse(code.render()) == code


def check_total(text: str) -> None:
    """Any text parses, or fails with PayloadError of a known format at a place inside it."""
    failure: PayloadError | None = None
    try:
        parsed = codes.parse(text)
    except PayloadError as err:
        failure = err
    if failure is not None:
        assert failure.format_name in codes.FORMATS
        assert failure.position is None or 0 <= failure.position <= len(text)
        return
    again = codes.parse(parsed.render())
    assert again.render() == parsed.render()  # the canonical form is a fixed point


@given(st.text(max_size=80))
def test_parse_is_total(text: str) -> None:
    check_total(text)


@given(
    st.sampled_from(["MT:", "LW:D0:", "URN:LW:DP:", "URN:DEV:LW:", "{", "https://h/d/"]),
    st.text(max_size=60),
)
def test_parse_is_total_after_every_prefix(prefix: str, rest: str) -> None:
    check_total(prefix + rest)


@given(st.text("0123456789", min_size=1, max_size=30))
def test_verhoeff_agrees_with_python_stdnum(digits: str) -> None:
    from stdnum import verhoeff

    from provisiond.protocols.codes.matter import verhoeff_digit

    assert verhoeff_digit(digits) == verhoeff.calc_check_digit(digits)
