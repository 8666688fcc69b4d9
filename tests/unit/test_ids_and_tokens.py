"""Time-ordered ids and split access tokens."""

from __future__ import annotations

import time
import uuid

from provisiond.services.hashing import hash_token, new_split_token, new_split_tokens, split_token
from provisiond.services.ids import canonical, new_id, new_id_hexes, new_ids


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
    for text in (
        "",
        "abc",
        "no-dot-here",
        ".x",
        "a" * 22 + ".",
        "!" * 22 + ".v",
        "A" * 21 + ".verifier",
        "A" * 21 + "+.v",
        "A" * 21 + "/.v",
    ):
        assert split_token(text) is None, text


def test_hex_ids_are_the_same_ids_in_bulk_form() -> None:
    hexes = new_id_hexes(10_000)
    assert hexes == sorted(hexes)
    assert len(set(hexes)) == len(hexes)
    ids = [uuid.UUID(hex=h) for h in hexes]
    assert [i.hex for i in ids] == hexes
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    assert [canonical(h) for h in hexes[:100]] == [str(i) for i in ids[:100]]
    # the 62 random bits vary: every value of the first hex digit after the variant bits
    assert {h[17] for h in hexes} == set("0123456789abcdef")


def test_bulk_split_tokens_match_the_single_form() -> None:
    hexes = new_id_hexes(3001)
    made = new_split_tokens(hexes)
    assert len({token for token, _ in made}) == len(hexes)
    for h, (token, verifier_hash) in zip(hexes, made, strict=True):
        parsed = split_token(token)
        assert parsed is not None
        assert parsed[0] == uuid.UUID(hex=h)
        assert hash_token(parsed[1]) == verifier_hash
        assert len(parsed[1]) == 24  # 144 random bits
    single, _ = new_split_token(uuid.UUID(hex=hexes[0]))
    assert single.split(".")[0] == made[0][0].split(".")[0]
