"""The state machine helper: one table, one target per action, refusals from the machine."""

from __future__ import annotations

from enum import StrEnum

import pytest

from provisiond.domain.state_machine import StateMachine
from provisiond.errors import InvalidTransition


class Light(StrEnum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


class Switch(StrEnum):
    FLIP_ON = "flip-on"
    FLIP_OFF = "flip-off"
    SMASH = "smash"


def _refuse(state: Light, action: Switch) -> InvalidTransition:
    return InvalidTransition(f"{state} cannot {action}")


MACHINE = StateMachine(
    {
        (Light.OFF, Switch.FLIP_ON): Light.ON,
        (Light.ON, Switch.FLIP_OFF): Light.OFF,
        (Light.ON, Switch.SMASH): Light.BROKEN,
        (Light.OFF, Switch.SMASH): Light.BROKEN,
    },
    _refuse,
)


def test_questions_of_the_table() -> None:
    assert MACHINE.apply(Light.OFF, Switch.FLIP_ON) is Light.ON
    assert MACHINE.allows(Light.ON, Switch.SMASH)
    assert not MACHINE.allows(Light.BROKEN, Switch.FLIP_ON)
    assert MACHINE.sources(Switch.SMASH) == (Light.ON, Light.OFF)
    assert MACHINE.target(Switch.SMASH) is Light.BROKEN
    assert MACHINE.active() == (Light.OFF, Light.ON)


def test_an_illegal_move_is_the_machine_refusal() -> None:
    with pytest.raises(InvalidTransition, match="broken cannot flip-on"):
        MACHINE.apply(Light.BROKEN, Switch.FLIP_ON)


def test_an_action_leads_to_one_state() -> None:
    with pytest.raises(ValueError, match="smash leads to broken and to off"):
        StateMachine(
            {(Light.ON, Switch.SMASH): Light.BROKEN, (Light.OFF, Switch.SMASH): Light.OFF},
            _refuse,
        )
