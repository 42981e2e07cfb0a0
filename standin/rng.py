"""A seeded random source shared by every handler thread.

`random.Random` is not documented as thread-safe for concurrent use, and the stand-in draws from
one generator in many handler threads; a lock keeps each draw atomic so a seed gives repeatable
fault and seed sequences for a fixed request order.
"""
from __future__ import annotations

import random
import threading


class SharedRandom:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def random(self) -> float:
        with self._lock:
            return self._random.random()

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._random.uniform(low, high)

    def randint(self, low: int, high: int) -> int:
        with self._lock:
            return self._random.randint(low, high)
