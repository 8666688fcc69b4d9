"""Claim codes (what people type from a label) and the claim window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain.claims import CODE_ALPHABET, new_claim_code, normalise_claim_code
from provisiond.errors import InvalidInput

codes = st.builds(lambda _: new_claim_code(), st.integers())


def test_a_new_code_is_grouped_and_free_of_look_alikes() -> None:
    code = new_claim_code()
    groups = code.split("-")
    assert [len(g) for g in groups] == [4, 4, 4]
    assert not set(code.replace("-", "")) & set("01ILO")


@given(codes)
def test_spaces_dashes_and_case_do_not_matter(code: str) -> None:
    canonical = code.replace("-", "")
    assert normalise_claim_code(code) == canonical
    assert normalise_claim_code(" " + code.lower().replace("-", " ") + " ") == canonical


@given(codes, st.integers(0, 11), st.integers(1, 30))
def test_one_wrong_character_is_caught(code: str, position: int, shift: int) -> None:
    chars = list(code.replace("-", ""))
    chars[position] = CODE_ALPHABET[(CODE_ALPHABET.index(chars[position]) + shift) % 31]
    with pytest.raises(InvalidInput, match="mistyped"):
        normalise_claim_code("".join(chars))


@given(codes, st.integers(0, 10))
def test_two_swapped_neighbours_are_caught(code: str, position: int) -> None:
    chars = list(code.replace("-", ""))
    if chars[position] == chars[position + 1]:
        return
    chars[position], chars[position + 1] = chars[position + 1], chars[position]
    with pytest.raises(InvalidInput, match="mistyped"):
        normalise_claim_code("".join(chars))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("ABCD-EFGH-JK70", "holds '0'"),
        ("ABCD-1234", "holds '1'"),
        ("ABCD-éFGH", "holds 'É'"),
    ],
)
def test_what_no_code_holds_is_named(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        normalise_claim_code(text)
    assert err.value.problems[0].field == "code"


def test_a_claim_is_live_until_its_window_closes() -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    from provisiond.domain.claims import Claim, ClaimProof, ClaimStatus, ClaimTarget

    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    claim = Claim(
        uuid.uuid4(),
        uuid.uuid4(),
        "GEN-1",
        uuid.uuid4(),
        ClaimTarget.ME,
        ClaimProof.BUTTON,
        ClaimStatus.OPEN,
        start,
        start + timedelta(minutes=5),
    )
    inside = start + timedelta(seconds=299.5)
    assert claim.live(inside)
    assert claim.shown_status(inside) is ClaimStatus.OPEN
    assert claim.seconds_left(start + timedelta(seconds=61)) == 239
    closed = start + timedelta(minutes=5)
    assert not claim.live(closed)
    assert claim.shown_status(closed) is ClaimStatus.EXPIRED
    assert claim.seconds_left(closed + timedelta(hours=1)) == 0
