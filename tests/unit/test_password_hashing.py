"""Passwords: argon2id with OWASP's parameters; hashes made with others still verify and are
marked for rehashing."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest
from argon2 import PasswordHasher
from argon2.low_level import Type

from provisiond.services.hashing import (
    hash_password,
    needs_rehash,
    verify_password,
    verify_password_off_loop,
)

pytestmark = pytest.mark.real_password_cost


def test_passwords_are_argon2id_19_mib_2_iterations_1_lane() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batter")
    assert not needs_rehash(stored)


def test_hashes_with_other_parameters_verify_and_need_a_rehash() -> None:
    for old in (
        PasswordHasher(),  # argon2-cffi's defaults: what provisiond stored before
        PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.I),
    ):
        stored = old.hash("correct horse battery")
        assert verify_password(stored, "correct horse battery")
        assert needs_rehash(stored)


def test_what_is_not_a_hash_never_verifies_and_is_not_rehashed() -> None:
    assert not verify_password("not a hash", "anything")
    assert not needs_rehash("not a hash")
    assert not verify_password(None, "provisiond-dummy-password")


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_password_checks_run_below_the_event_loops_priority() -> None:
    async def check() -> tuple[int, int]:
        await verify_password_off_loop(None, "anything")
        pool = [t for t in threading.enumerate() if t.name.startswith("argon2")]
        assert pool
        return (
            os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
            os.getpriority(os.PRIO_PROCESS, pool[0].native_id or 0),
        )

    loop_nice, pool_nice = asyncio.run(check())
    assert pool_nice > loop_nice
