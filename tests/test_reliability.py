"""Rotations of 10,000 items under faults, against the local KMS over
HTTP: every item rotated exactly once, none lost, none duplicated, and an
output that parses at every moment. See docs/reliability.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kms_reencrypt._ratelimit import RateGovernor


def _simulate_governor(
    throttled: Callable[[random.Random, float], bool],
) -> tuple[float | None, int]:
    # 30 s of calls on a fake clock, capped at 400 per second.
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    governor = RateGovernor(400, clock=lambda: now[0], sleep=sleep)
    draws = random.Random(5)
    accepted = 0
    while now[0] < 30.0:
        governor.acquire()
        now[0] += 0.0001
        if throttled(draws, now[0]):
            governor.throttled()
        else:
            accepted += 1
    return governor.rate, accepted


def test_the_governor_keeps_its_rate_under_throttles_it_does_not_cause() -> (
    None
):
    """20 % of calls throttled whatever the rate: lowering the rate does
    not lower that share, so the governor keeps the cap instead of
    sinking to its floor of 2 calls a second."""
    rate, accepted = _simulate_governor(lambda draws, _: draws.random() < 0.2)

    assert rate is not None
    assert rate >= 300
    assert accepted > 30 * 200


def test_the_governor_still_comes_down_to_a_quota() -> None:
    """A quota of 100 calls a second (a token bucket): the governor
    lowers the cap of 400 to about the quota."""
    bucket = {"tokens": 10.0, "last": 0.0}

    def quota(draws: random.Random, now: float) -> bool:
        refill = (now - bucket["last"]) * 100
        bucket["tokens"] = min(10.0, bucket["tokens"] + refill)
        bucket["last"] = now
        if bucket["tokens"] >= 1:
            bucket["tokens"] -= 1
            return False
        return True

    rate, accepted = _simulate_governor(quota)

    assert rate is not None
    assert rate < 200
    assert 30 * 90 <= accepted <= 30 * 110
