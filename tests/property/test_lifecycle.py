"""The device lifecycle as a state machine: random action sequences against a model."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from provisiond.domain.device import TRANSITIONS, DeviceAction, DeviceState, next_state
from provisiond.errors import InvalidTransition

pytestmark = pytest.mark.slow  # property-based


class Lifecycle(RuleBasedStateMachine):
    """Ownership alternates: claim only when unowned, release only when claimed."""

    def __init__(self) -> None:
        super().__init__()
        self.state = DeviceState.REGISTERED
        self.owned = False
        self.claims = 0

    @rule(action=st.sampled_from(DeviceAction))
    def act(self, action: DeviceAction) -> None:
        allowed = (action is DeviceAction.CLAIM) != self.owned
        if allowed:
            self.state = next_state(self.state, action)
            self.owned = action is DeviceAction.CLAIM
            self.claims += action is DeviceAction.CLAIM
        else:
            with pytest.raises(InvalidTransition):
                next_state(self.state, action)

    @invariant()
    def state_matches_ownership(self) -> None:
        assert (self.state is DeviceState.CLAIMED) == self.owned
        if self.claims == 0:
            assert self.state is DeviceState.REGISTERED
        elif not self.owned:
            assert self.state is DeviceState.RELEASED


TestLifecycle = Lifecycle.TestCase


def test_table_has_no_transition_out_of_a_state_it_does_not_name() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == set(DeviceState)
