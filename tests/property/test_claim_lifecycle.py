"""The claim lifecycle as a state machine: random action sequences against a model, and the
questions the store's guarded updates ask of both transition tables."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from provisiond.domain.claims import (
    CLAIM_LIFECYCLE,
    CLAIM_TRANSITIONS,
    LIVE,
    ClaimAction,
    ClaimStatus,
)
from provisiond.domain.device import LIFECYCLE, DeviceAction, DeviceState
from provisiond.domain.state_machine import StateMachine
from provisiond.errors import ClaimClosed

_ENDINGS = {
    ClaimAction.EXPIRE: ClaimStatus.EXPIRED,
    ClaimAction.FAIL: ClaimStatus.FAILED,
    ClaimAction.CANCEL: ClaimStatus.CANCELLED,
}


class ClaimLifecycle(RuleBasedStateMachine):
    """A claim is proven once, from open; finished once, when proven; any live claim may
    end (expire, fail, be cancelled); an ended claim never moves again."""

    def __init__(self) -> None:
        super().__init__()
        self.status = ClaimStatus.OPEN
        self.proven = False
        self.ended = False

    @rule(action=st.sampled_from(ClaimAction))
    def act(self, action: ClaimAction) -> None:
        if self.ended:
            allowed = False
        elif action is ClaimAction.PROVE:
            allowed = not self.proven
        elif action is ClaimAction.FINISH:
            allowed = self.proven
        else:
            allowed = True
        assert CLAIM_LIFECYCLE.allows(self.status, action) is allowed
        if not allowed:
            with pytest.raises(ClaimClosed):
                CLAIM_LIFECYCLE.apply(self.status, action)
            return
        self.status = CLAIM_LIFECYCLE.apply(self.status, action)
        self.proven = self.proven or action is ClaimAction.PROVE
        self.ended = action is not ClaimAction.PROVE
        if action in _ENDINGS:
            assert self.status is _ENDINGS[action]

    @invariant()
    def live_until_ended(self) -> None:
        assert (self.status in LIVE) is not self.ended
        if not self.ended:
            assert self.status is (ClaimStatus.PROVEN if self.proven else ClaimStatus.OPEN)


TestClaimLifecycle = ClaimLifecycle.TestCase


def test_live_claims_are_open_or_proven() -> None:
    assert LIVE == (ClaimStatus.OPEN, ClaimStatus.PROVEN)


def test_claim_table_names_every_status() -> None:
    statuses = {s for s, _ in CLAIM_TRANSITIONS} | set(CLAIM_TRANSITIONS.values())
    assert statuses == set(ClaimStatus)


@pytest.mark.parametrize(
    ("machine", "states", "actions"),
    [
        (CLAIM_LIFECYCLE, list(ClaimStatus), list(ClaimAction)),
        (LIFECYCLE, list(DeviceState), list(DeviceAction)),
    ],
    ids=["claim", "device"],
)
def test_guarded_updates_admit_exactly_the_table(
    machine: StateMachine[Any, Any], states: list[Any], actions: list[Any]
) -> None:
    """What the store's ``WHERE state IN (sources)`` / ``SET state = target`` does is what
    ``apply`` does, state by state."""
    for action in actions:
        for state in states:
            allowed = state in machine.sources(action)
            assert machine.allows(state, action) is allowed
            if allowed:
                assert machine.apply(state, action) is machine.target(action)
