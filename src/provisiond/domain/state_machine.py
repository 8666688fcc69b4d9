"""A state machine as one table, ``(state, action) -> next state`` (after h11's ``_state.py``).

The table is the whole rule. :meth:`StateMachine.apply` moves along it or raises the
machine's refusal; :meth:`StateMachine.allows` asks without moving. The store's guarded
updates take their ``WHERE state IN (...)`` from :meth:`StateMachine.sources` and the state
they write from :meth:`StateMachine.target`, so the database admits exactly the moves the
table names: a race lost there is a move the table refuses for the state the row had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from provisiond.errors import ProvisiondError

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


class StateMachine(Generic[S, A]):
    """One transition table and the questions asked of it. Every action leads to one state
    (from whichever state it leaves), so a guarded update knows what to write."""

    def __init__(
        self, table: Mapping[tuple[S, A], S], refuse: Callable[[S, A], ProvisiondError]
    ) -> None:
        self.table: dict[tuple[S, A], S] = dict(table)
        self._refuse = refuse
        self._targets: dict[A, S] = {}
        self._sources: dict[A, tuple[S, ...]] = {}
        for (state, action), to in self.table.items():
            if self._targets.setdefault(action, to) != to:
                raise ValueError(f"{action} leads to {self._targets[action]} and to {to}")
            self._sources[action] = (*self._sources.get(action, ()), state)

    def allows(self, state: S, action: A) -> bool:
        return (state, action) in self.table

    def apply(self, state: S, action: A) -> S:
        """The state ``action`` leads to from ``state``, or the machine's refusal."""
        try:
            return self.table[(state, action)]
        except KeyError:
            raise self._refuse(state, action) from None

    def sources(self, action: A) -> tuple[S, ...]:
        """The states ``action`` may leave, in the table's order (none: it is never allowed)."""
        return self._sources.get(action, ())

    def target(self, action: A) -> S:
        """The one state ``action`` leads to."""
        return self._targets[action]

    def active(self) -> tuple[S, ...]:
        """The states with a way out, in the table's order; every other state is final."""
        return tuple(dict.fromkeys(state for state, _ in self.table))
