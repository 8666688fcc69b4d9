"""The Things Stack's answers as provisiond reads them (errors, Identity Server records), and
the ownership rule: parsers total on any JSON, the real error shapes from the stand-in's
vectors, the mark, legacy records, and the attribute limit."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from provisiond.domain.tts import (
    MAX_ATTRIBUTES,
    OWNER_ATTRIBUTE,
    SERIAL_ATTRIBUTE,
    EndDevice,
    NetworkSettings,
    is_ours,
)
from provisiond.integrations.tts import protocol as api
from tests.support.tts_standin import tts_error

OWNER = uuid.UUID("7b0c1c2e-8d43-4a64-9f0e-3f1d2a6b5c4d")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
@example({"details": [{"name": 5}], "message": "error:"})
@example({"details": [], "message": "error:pkg/x:name_only"})
@example({"ids": {"device_id": "d", "application_ids": "not a dict"}})
@example({"ids": {"device_id": "d", "application_ids": {}}, "attributes": {"k": 1}})
def test_answers_are_read_totally(body: Any) -> None:
    error = api.parse_error(body)
    assert isinstance(error.name, str)
    found = api.parse_end_device(body)
    assert found is None or all(isinstance(v, str) for v in found.attributes.values())


def test_the_real_errors_are_told_apart() -> None:
    _status, taken = tts_error(
        "end_device_euis_taken",
        join_eui="70B3D57ED0000010",
        dev_eui="0018B20000000101",
        device_id="meter-kitchen",
        application_id="kanarra-meters",
    )
    error = api.parse_error(taken)
    assert (error.namespace, error.name) == ("pkg/identityserver", api.EUIS_TAKEN)
    assert error.attributes["device_id"] == "meter-kitchen"
    status, id_taken = tts_error("id_taken")
    assert status == 409
    assert api.parse_error(id_taken).name == api.ID_TAKEN
    # without details, the name and the holder are in the message
    bare = api.parse_error({"code": 6, "message": taken["message"]})
    assert (bare.name, bare.attributes["device_id"], bare.attributes["application_id"]) == (
        api.EUIS_TAKEN,
        "meter-kitchen",
        "kanarra-meters",
    )


def test_the_mark_decides_and_a_legacy_record_accepts_the_serial() -> None:
    mine = {OWNER_ATTRIBUTE: str(OWNER)}
    assert is_ours(mine, OWNER)
    assert not is_ours({OWNER_ATTRIBUTE: str(uuid.uuid4())}, OWNER, legacy=True)
    assert not is_ours({}, OWNER)
    assert not is_ours({SERIAL_ATTRIBUTE: "S1"}, OWNER)  # no mark, no legacy record
    assert is_ours({SERIAL_ATTRIBUTE: "S1"}, OWNER, legacy=True, serial="S1")
    assert not is_ours({SERIAL_ATTRIBUTE: "S2"}, OWNER, legacy=True, serial="S1")
    assert is_ours({SERIAL_ATTRIBUTE: "S1"}, OWNER, legacy=True)  # the device is gone
    assert not is_ours({"owner": "field-team"}, OWNER, legacy=True)


def test_the_mark_is_added_to_the_attributes_there_are() -> None:
    device = EndDevice(
        "app",
        "eui-1",
        "0018B20000000101",
        "70B3D57ED0000010",
        "00" * 16,
        "n",
        "S1",
        NetworkSettings(),
        "ns",
        "as",
        "js",
        OWNER,
    )
    assert device.attributes({"owner": "x"}) == {
        "owner": "x",
        OWNER_ATTRIBUTE: str(OWNER),
        SERIAL_ATTRIBUTE: "S1",
    }
    nine = {f"k{n}x": "v" for n in range(MAX_ATTRIBUTES - 1)}
    assert SERIAL_ATTRIBUTE not in device.attributes(nine)  # the mark first, if room is short
    assert len(device.attributes(nine)) == MAX_ATTRIBUTES
    assert NetworkSettings(lorawan_version="MAC_V1_1").needs_nwk_key
    assert not NetworkSettings(lorawan_version="MAC_V1_0_4").needs_nwk_key
