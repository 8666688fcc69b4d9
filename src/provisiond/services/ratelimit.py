"""Token-bucket rate limits, in this process's memory.

Each key (a profile, a profile and an address, an address guessing keys) has a bucket of
``rate_per_minute`` tokens that refills continuously; a request takes one token or is
refused with the seconds until the next token.

With several instances on one database each enforces its share: ``share`` is the number of
live instances (kept by a background loop from their heartbeats), and every bucket holds
``rate / share`` tokens. Requests spread over the instances then get the configured rate in
all; requests that all reach one instance get less, never more.

The first refusal of a bucket is logged (logger ``provisiond.security``, with the limit's
name and key — addresses, ids, never a secret); later ones are not, until the bucket has
let a request through again: an attacker cannot flood the log through the limiter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from provisiond.domain.profiles import Profile

log = logging.getLogger("provisiond.security")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    logged: bool = False  # this run of refusals has been logged


class RateLimiter:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._buckets: dict[Hashable, _Bucket] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self.share = 1  # live instances on this database

    def set_share(self, instances: int) -> None:
        self.share = max(1, instances)

    def take(self, key: Hashable, rate_per_minute: int) -> float:
        """Take a token: 0.0 when allowed, else the seconds to wait before retrying."""
        now = self._clock()
        capacity = max(1.0, rate_per_minute / self.share)
        per_second = capacity / 60.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._forget_full(now)
                bucket = self._buckets[key] = _Bucket(capacity, now)
            else:
                bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * per_second)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                bucket.logged = False
                return 0.0
            wait = (1.0 - bucket.tokens) / per_second
            first, bucket.logged = not bucket.logged, True
        if first:
            _log_throttled(key, rate_per_minute, wait)
        return wait

    def _forget_full(self, now: float) -> None:
        """Drop buckets idle long enough to have refilled (they hold no state worth keeping);
        if none has, drop the oldest half: memory stays bounded under address floods."""
        idle = [k for k, b in self._buckets.items() if now - b.updated > 60.0]
        for k in idle:
            del self._buckets[k]
        if not idle:
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1].updated)[
                : len(self._buckets) // 2
            ]:
                del self._buckets[k]


def _log_throttled(key: Hashable, rate_per_minute: int, wait: float) -> None:
    parts = list(key) if isinstance(key, tuple) else [key]
    limit, subject = str(parts[0]), " ".join(str(p) for p in parts[1:])
    log.warning(
        "throttled %s %s: over %d a minute; refused until a request is allowed "
        "again (next in %.0f s)",
        limit,
        subject,
        rate_per_minute,
        wait,
        extra={
            "event": "throttled",
            "limit": limit,
            "subject": subject,
            "rate_per_minute": rate_per_minute,
            "retry_after": round(wait, 1),
        },
    )


def log_refused(what: str, reason: str, **subject: object) -> None:
    """Log one failed guess — a wrong password or claim code, an unknown serial or
    provisioning key — by its subject (address, user, serial), never by what was guessed.
    Each is also counted by a limit, whose first refusal is logged as ``throttled``."""
    described = " ".join(f"{k}={v}" for k, v in subject.items())
    log.warning(
        "refused %s: %s (%s)",
        what,
        reason,
        described,
        extra={
            "event": "refused",
            "limit": what,
            "reason": reason,
            **{k: str(v) for k, v in subject.items()},
        },
    )


def unknown_source_wait(limiter: RateLimiter, source: str, per_minute: int) -> float:
    """Take one request from an address's budget of provision requests that name no profile
    it may use (a wrong key or secret, a certificate of no CA a profile trusts): one budget
    for self-provisioning and certificate-chain attestation alike. Seconds to wait (0: go
    ahead)."""
    return limiter.take(("unknown", source), per_minute)


def profile_wait(limiter: RateLimiter, profile: Profile, source: str) -> float:
    """Take one request from a profile's limits — all addresses together, and this
    address — and return the seconds to wait (0: go ahead)."""
    return max(
        limiter.take(("profile", profile.id), profile.rate_per_minute),
        limiter.take(("source", profile.id, source), profile.source_rate_per_minute),
    )
