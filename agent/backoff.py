"""The retry schedule: pure functions, so tests can assert it exactly."""

from __future__ import annotations

import random
from collections.abc import Callable

JITTER_FRACTION = 0.1


def retry_delay_seconds(
    retry_number: int,
    base_seconds: float,
    *,
    jitter: float = JITTER_FRACTION,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry ``retry_number`` (1-based): ``base · 2^(n-1)`` ± ``jitter``.

    With the default base of 10 s the retries come after about 10, 20 and 40 s. The jitter (±10 %)
    keeps a burst of failures from retrying in lockstep.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number must be 1 or more, got {retry_number!r}")
    nominal = base_seconds * (2 ** (retry_number - 1))
    return max(0.0, nominal * (1.0 + uniform(-jitter, jitter)))
