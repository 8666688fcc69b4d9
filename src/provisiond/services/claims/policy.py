"""The instance's claim settings, and the rate limits they set on claimers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisiond.domain.claims import ClaimProof
from provisiond.domain.text import format_wait
from provisiond.errors import TooManyRequests
from provisiond.services.ratelimit import RateLimiter
from provisiond.store.claims import ClaimableDevice


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    default_proof: ClaimProof
    default_window_seconds: int
    claim_rate_per_minute: int
    proof_rate_per_minute: int
    lookup_rate_per_minute: int  # device pages a user may ask for that find nothing


def effective(device: ClaimableDevice, policy: ClaimPolicy) -> tuple[ClaimProof, int]:
    """The proof a claim of this device needs and its window (its profile's, else the
    instance's)."""
    return (
        device.claim_proof or policy.default_proof,
        device.claim_window_seconds or policy.default_window_seconds,
    )


def take_token(limiter: RateLimiter, keys: list[tuple[Any, ...]], rate: int, what: str) -> None:
    for key in keys:
        wait = limiter.take(key, rate)
        if wait:
            raise TooManyRequests(
                f"too many {what}; try again in {format_wait(wait)}", retry_after=wait
            )
