"""services/dps.py Operations: an operation answers its owner only, until it expires, and
the table holds at most its cap."""

from __future__ import annotations

from provisiond.services.dps import Operations


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_operation_answers_its_owner_only_until_it_expires() -> None:
    clock = Clock()
    ops = Operations(ttl=60, clock=clock)
    begun = ops.begin("session-a", {"status": "assigned"})
    assert (begun.status, begun.body["status"], begun.retry_after) == (202, "assigning", 1)
    operation_id = begun.body["operationId"]
    assert ops.status("session-a", operation_id) == {
        "operationId": operation_id,
        "status": "assigned",
    }
    assert ops.status("session-b", operation_id) is None
    assert ops.status("session-a", operation_id + "x") is None
    clock.now += 60
    assert ops.status("session-a", operation_id) is None


def test_the_oldest_operations_make_room() -> None:
    ops = Operations(ttl=60, cap=2, clock=Clock())
    first, second, third = (ops.begin("o", {"n": n}).body["operationId"] for n in range(3))
    assert ops.status("o", first) is None
    assert ops.status("o", second) == {"operationId": second, "n": 1}
    assert ops.status("o", third) == {"operationId": third, "n": 2}
