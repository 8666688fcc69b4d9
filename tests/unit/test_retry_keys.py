"""Retry keys: the answer they seal opens with that key, for that device, only."""

from __future__ import annotations

import hashlib
import uuid

from hypothesis import given
from hypothesis import strategies as st

from provisiond.services.retry_keys import hash_retry_key, open_answer, seal_answer

KEY = "q7Rk2vXb9cWm1ZsT4hLp8A"
DEVICE = uuid.UUID("0192d4b0-7a5e-7c3b-9a8e-1f2d3c4b5a69")


@given(
    st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(["clientId", "userName", "password"]), st.text(max_size=64), max_size=3
        ),
    )
)
def test_an_answer_opens_with_its_key_and_device(value: object) -> None:
    sealed = seal_answer(KEY, DEVICE, value)
    assert open_answer(KEY, DEVICE, sealed) == value


def test_another_key_another_device_or_a_changed_byte_open_nothing() -> None:
    sealed = seal_answer(KEY, DEVICE, "AaJE.token")
    assert "AaJE.token" not in sealed
    assert open_answer(KEY + "x", DEVICE, sealed) is None
    assert open_answer(KEY, uuid.uuid4(), sealed) is None
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert open_answer(KEY, DEVICE, flipped) is None
    assert open_answer(KEY, DEVICE, "rk1:not base64!") is None
    assert open_answer(KEY, DEVICE, "plain:AaJE.token") is None
    assert seal_answer(KEY, DEVICE, "x") != seal_answer(KEY, DEVICE, "x")  # fresh nonces


def test_the_stored_hash_is_not_a_plain_hash_of_the_key() -> None:
    assert hash_retry_key(KEY) == hash_retry_key(KEY)
    assert hash_retry_key(KEY) != hashlib.sha256(KEY.encode()).hexdigest()
    assert hash_retry_key(KEY) != hash_retry_key(KEY[:-1])
