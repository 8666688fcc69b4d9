"""CBOR as the AWS listener reads it: any bytes a device sends are a value or CborError,
never another exception; what is encoded decodes to itself."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from provisiond.protocols import aws_cbor

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_what_is_encoded_decodes_to_itself(value: object) -> None:
    assert aws_cbor.decode(aws_cbor.encode(value)) == value


@given(st.binary(max_size=256))
def test_any_bytes_are_a_value_or_a_cbor_error(data: bytes) -> None:
    with contextlib.suppress(aws_cbor.CborError):
        aws_cbor.decode(data)
