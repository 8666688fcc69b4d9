"""Telling two response-time distributions apart, as an attacker timing a server would.

The samples are taken in pairs, one request of each kind back to back, in a random order per
pair: whatever slows the machine down (other processes, garbage collection, the disk) slows
both members of a pair alike, and the order within a pair cancels out. The statistic is the
median of the paired differences (robust to the long tail a shared machine adds), and its
p-value comes from a sign-flip permutation test: with no difference between the two kinds,
each difference is as likely to have either sign, since the order was chosen by a coin.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Comparison:
    pairs: int
    median_a: float  # seconds
    median_b: float
    median_difference: float  # of a - b, pair by pair
    p_value: float  # that the differences are centred on 0

    def differs(self, alpha: float, tolerance: float) -> bool:
        """Significant at ``alpha`` and more than ``tolerance`` seconds apart."""
        return self.p_value < alpha and abs(self.median_difference) > tolerance

    def describe(self) -> str:
        return (
            f"{self.pairs} pairs: median A {self.median_a * 1e3:.3f} ms, "
            f"B {self.median_b * 1e3:.3f} ms, median of A - B "
            f"{self.median_difference * 1e6:+.0f} us, p = {self.p_value:.4f}"
        )


def paired_timings(
    request_a: Callable[[], object], request_b: Callable[[], object], pairs: int, rng: random.Random
) -> tuple[list[float], list[float]]:
    """Response times of ``pairs`` requests of each kind, interleaved A/B in random order."""
    a: list[float] = []
    b: list[float] = []
    clock = time.perf_counter
    for _ in range(pairs):
        order = ((request_a, a), (request_b, b))
        if rng.random() < 0.5:
            order = order[::-1]
        for request, into in order:
            start = clock()
            request()
            into.append(clock() - start)
    return a, b


def sign_flip_p_value(differences: list[float], rng: random.Random, rounds: int = 2_000) -> float:
    """Two-sided p-value of the median of ``differences`` under random signs."""
    observed = abs(statistics.median(differences))
    extreme = 0
    for _ in range(rounds):
        flipped = [d if rng.random() < 0.5 else -d for d in differences]
        if abs(statistics.median(flipped)) >= observed:
            extreme += 1
    return (extreme + 1) / (rounds + 1)


def compare(a: list[float], b: list[float], rng: random.Random) -> Comparison:
    differences = [x - y for x, y in zip(a, b, strict=True)]
    return Comparison(
        len(differences),
        statistics.median(a),
        statistics.median(b),
        statistics.median(differences),
        sign_flip_p_value(differences, rng),
    )
