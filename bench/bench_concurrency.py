"""P5: 8 nodes awaited concurrently (as ComfyUI's async executor can) vs one node, wall time.

Each node has its own fresh references (2 x 1024x1024) so nothing is shared through caches.
"""
from __future__ import annotations

import asyncio
import time

from . import harness as h

P5_GOAL = 1.5
NODES = 8


async def _measure(mode: h.Mode) -> dict[str, list[float]]:
    side = mode.side
    seeds = iter(range(5000, 10**6))

    def fresh() -> list:
        return [h.photo_like(side, side, next(seeds)), h.photo_like(side, side, next(seeds))]

    fixtures = {"one": [[fresh()] for _ in range(mode.runs)],
                "eight": [[fresh() for _ in range(NODES)] for _ in range(mode.runs)]}
    await h.run_pack(fresh())  # warm-up

    def contender(kind: str):
        async def timed(i: int) -> float:
            started = time.monotonic()
            await asyncio.gather(*(h.run_pack(refs) for refs in fixtures[kind][i]))
            return time.monotonic() - started
        return timed

    return await h.interleaved(mode.runs, {"one": contender("one"), "eight": contender("eight")})


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.concurrency_delay)
    h.reset_pack_caches()
    times = asyncio.run(_measure(mode))
    ratio = h.paired_ratio(times["eight"], times["one"])
    one, eight = h.median(times["one"]), h.median(times["eight"])
    result = h.BenchResult("concurrency")
    result.targets.append(h.Target(
        "P5", f"{NODES} nodes awaited concurrently / one node, wall time "
              f"(stand-in delay {mode.concurrency_delay:g} s)",
        f"{ratio:.2f}x ({h.ms(eight)} vs {h.ms(one)})", f"<= {P5_GOAL}x", ratio <= P5_GOAL))
    result.numbers = {"p5_ratio": ratio, "one": times["one"], "eight": times["eight"]}
    return result
