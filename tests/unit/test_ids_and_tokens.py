"""Time-ordered ids and split access tokens."""

from __future__ import annotations

import time
import uuid

from provisiond.services.hashing import hash_token, new_split_token, split_token
from provisiond.services.ids import new_id, new_ids


def test_ids_are_version_7_unique_and_increasing() -> None:
    ids = new_ids(5000) + new_ids(9000) + [new_id() for _ in range(200)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}


def test_ids_carry_the_creation_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    # An earlier burst may have borrowed a few milliseconds ahead; never more than it needed.
    assert before <= int(made.hex[:12], 16) <= after + 5


def test_split_token_round_trip() -> None:
    credential_id = new_id()
    token, verifier_hash = new_split_token(credential_id)
    selector, verifier = split_token(token)  # type: ignore[misc]
    assert selector == credential_id
    assert hash_token(verifier) == verifier_hash
    assert len(verifier) >= 22  # 128 bits of base64url
    assert verifier_hash not in token


def test_split_token_refuses_other_strings() -> None:
    for text in ("", "abc", "no-dot-here", ".x", "a" * 22 + ".", "!" * 22 + ".v",
                 "A" * 21 + ".verifier", "A" * 21 + "+.v", "A" * 21 + "/.v"):
        assert split_token(text) is None, text
