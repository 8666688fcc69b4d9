"""Time-ordered identifiers (UUID version 7, RFC 9562).

New rows get ids that sort by creation time, so every index on an id grows at its right edge
instead of taking random inserts: a bulk import of a million devices writes its B-trees
sequentially. The 12-bit ``rand_a`` field is a counter (RFC 9562 §6.2, method 1), so ids made
in the same millisecond by this process still increase.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_B = (1 << 62) - 1


def _reserve(n: int) -> tuple[int, int]:
    """Reserve ``n`` consecutive (millisecond, counter) slots; returns the first."""
    global _last_ms, _counter
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms, _counter = now, 0
        start_ms, start = _last_ms, _counter
        total = start + n
        _last_ms += total >> 12  # past 4096 ids in one millisecond, borrow the next ones
        _counter = total & 0xFFF
        return start_ms, start


def new_ids(n: int) -> list[uuid.UUID]:
    """``n`` fresh ids, increasing."""
    if n <= 0:
        return []
    ms, counter = _reserve(n)
    block = os.urandom(8 * n)
    from_bytes = int.from_bytes
    out = []
    for i in range(n):
        slot = counter + i
        value = (((ms + (slot >> 12)) << 80) | ((slot & 0xFFF) << 64) | _VERSION_VARIANT
                 | (from_bytes(block[8 * i:8 * i + 8]) & _RAND_B))
        out.append(uuid.UUID(int=value))
    return out


def new_id() -> uuid.UUID:
    return new_ids(1)[0]
