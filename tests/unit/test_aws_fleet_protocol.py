"""AWS IoT fleet provisioning's wire format (protocols/aws_fleet.py, aws_cbor.py): topics,
answer filters, payloads, and CBOR against RFC 8949's examples (Appendix A)."""

from __future__ import annotations

import pytest

from provisiond.protocols import aws_cbor
from provisiond.protocols import aws_fleet as wire

# (value, encoding) from RFC 8949 Appendix A
RFC_8949 = [
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (-1, "20"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    ("", "60"),
    ("IETF", "6449455446"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (1.1, "fb3ff199999999999a"),
]


@pytest.mark.parametrize(("value", "hex_"), RFC_8949)
def test_cbor_encodes_and_decodes_rfc_8949s_examples(value: object, hex_: str) -> None:
    assert aws_cbor.encode(value) == bytes.fromhex(hex_)
    assert aws_cbor.decode(bytes.fromhex(hex_)) == value


@pytest.mark.parametrize(
    ("hex_", "value"),
    [
        ("f93c00", 1.0),  # half precision
        ("fa47c35000", 100000.0),
        ("7f657374726561646d696e67ff", "streaming"),  # indefinite text
        ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),  # indefinite arrays
        ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),  # indefinite map
        ("c074323031332d30332d32315432303a30343a30305a", "2013-03-21T20:04:00Z"),  # a tag
    ],
)
def test_cbor_reads_what_other_encoders_may_write(hex_: str, value: object) -> None:
    assert aws_cbor.decode(bytes.fromhex(hex_)) == value


@pytest.mark.parametrize(
    "hex_",
    [
        "",  # nothing
        "1a0000",  # ends early
        "0000",  # bytes after the item
        "1c",  # reserved additional information
        "62c3",  # text cut short
        "62ff00",  # text not UTF-8
        "a1f600",  # a map key that is null
        "f8ff",  # a simple value not accepted
        "1f",  # an integer of indefinite length
        "81" * 20 + "00",  # nested past the limit
        "5f4201026103ff",  # a text chunk inside a byte string
    ],
)
def test_cbor_refuses_what_is_not_well_formed(hex_: str) -> None:
    with pytest.raises(aws_cbor.CborError):
        aws_cbor.decode(bytes.fromhex(hex_))


def test_topics_name_the_operation_format_and_template() -> None:
    create = wire.parse_topic("$aws/certificates/create/json")
    assert create == wire.Topic(wire.Operation.CREATE_KEYS_AND_CERTIFICATE, wire.Format.JSON)
    assert create.answer(accepted=True) == "$aws/certificates/create/json/accepted"
    csr = wire.parse_topic("$aws/certificates/create-from-csr/cbor")
    assert csr == wire.Topic(wire.Operation.CREATE_CERTIFICATE_FROM_CSR, wire.Format.CBOR)
    assert csr.answer(accepted=False) == "$aws/certificates/create-from-csr/cbor/rejected"
    register = wire.parse_topic("$aws/provisioning-templates/My_Template-1/provision/json")
    assert register == wire.Topic(wire.Operation.REGISTER_THING, wire.Format.JSON, "My_Template-1")
    assert register.name == "$aws/provisioning-templates/My_Template-1/provision/json"


@pytest.mark.parametrize(
    "name",
    [
        "$aws/certificates/create/xml",
        "$aws/certificates/create/json/accepted",
        "$aws/certificates/create",
        "/aws/certificates/create/json",
        "$aws/provisioning-templates//provision/json",
        "$aws/provisioning-templates/a/b/provision/json",
        "$aws/provisioning-templates/+/provision/json",
        "$aws/provisioning-templates/" + "x" * 37 + "/provision/json",
        "$aws/provisioning-templates/t/provision/json/extra",
    ],
)
def test_other_topics_name_no_request(name: str) -> None:
    assert wire.parse_topic(name) is None


def test_answer_filters_are_the_answer_topics_or_their_plus() -> None:
    accepted = "$aws/certificates/create/json/accepted"
    assert wire.answer_filter(accepted) is not None
    assert wire.answer_filter("$aws/certificates/create/json/+") is not None
    assert wire.answer_filter("$aws/certificates/create/json/#") is None
    assert wire.answer_filter("$aws/certificates/+/json/accepted") is None
    assert wire.filter_matches("$aws/certificates/create/json/+", accepted)
    assert not wire.filter_matches("$aws/certificates/create/json/+", accepted + "/x")
    assert not wire.filter_matches(
        "$aws/certificates/create/json/+", "$aws/certificates/create/cbor/accepted"
    )
    assert wire.filter_matches(accepted, accepted)


def test_payloads_and_errors() -> None:
    assert wire.decode(wire.Format.JSON, b"") == {}
    assert wire.decode(wire.Format.CBOR, b"  ") == {}
    body = {"certificateOwnershipToken": "t", "parameters": {"SerialNumber": "1"}}
    for fmt in wire.Format:
        assert wire.decode(fmt, wire.encode(fmt, body)) == body
    assert wire.register_thing_of(body) == wire.RegisterThing("t", {"SerialNumber": "1"})
    assert wire.register_thing_of({"certificateOwnershipToken": "t", "parameters": None}) == (
        wire.RegisterThing("t", {})
    )
    too_many = {"certificateOwnershipToken": "t", "parameters": {str(n): "" for n in range(65)}}
    for bad in ({}, {"certificateOwnershipToken": ""}, too_many):
        with pytest.raises(wire.PayloadError):
            wire.register_thing_of(bad)
    with pytest.raises(wire.PayloadError):
        wire.decode(wire.Format.CBOR, aws_cbor.encode([1]))
    assert wire.error(403, "AccessDenied", "no") == {
        "statusCode": 403,
        "errorCode": "AccessDenied",
        "errorMessage": "no",
    }
