"""P5: 8 nodes awaited concurrently (as ComfyUI's async executor can) vs one node, wall time.

Each node has its own fresh references (2 x 1024x1024) so nothing is shared through caches.
A second series re-uses references uploaded in an untimed warm-up: only I/O then remains, which
separates "requests overlap on one pool" from "2 cores encode 16 PNGs".
"""
from __future__ import annotations

import asyncio
import os
import time

from . import harness as h

P5_GOAL = 1.5
NODES = 8


async def _measure(standin: h.StandIn, mode: h.Mode) -> dict[str, list]:
    side = mode.side
    seeds = iter(range(5000, 10**6))

    def fresh() -> list:
        return [h.photo_like(side, side, next(seeds)), h.photo_like(side, side, next(seeds))]

    fixtures = {"one": [[fresh()] for _ in range(mode.runs)],
                "eight": [[fresh() for _ in range(NODES)] for _ in range(mode.runs)],
                "eight_uploaded": [[fresh() for _ in range(NODES)] for _ in range(mode.runs)]}
    await h.run_pack(fresh())  # warm-up
    for round_references in fixtures["eight_uploaded"]:  # untimed: fills the upload cache
        await asyncio.gather(*(h.run_pack(refs) for refs in round_references))

    def contender(kind: str):
        async def timed(i: int) -> tuple[float, float, float]:
            """(wall, our CPU seconds, the stand-in's CPU seconds)."""
            started, cpu, standin_cpu = time.monotonic(), time.process_time(), standin.cpu_seconds()
            await asyncio.gather(*(h.run_pack(refs) for refs in fixtures[kind][i]))
            return (time.monotonic() - started, time.process_time() - cpu,
                    standin.cpu_seconds() - standin_cpu)
        return timed

    return await h.interleaved(mode.runs, {kind: contender(kind) for kind in fixtures})


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.concurrency_delay)
    h.reset_pack_caches()
    measured = asyncio.run(_measure(standin, mode))
    times = {kind: [wall for wall, _, _ in rows] for kind, rows in measured.items()}
    ratio = h.paired_ratio(times["eight"], times["one"])
    uploaded_ratio = h.paired_ratio(times["eight_uploaded"], times["one"])
    one, eight = h.median(times["one"]), h.median(times["eight"])
    cpu = {kind: (h.median([c for _, c, _ in rows]), h.median([s for _, _, s in rows]))
           for kind, rows in measured.items()}
    result = h.BenchResult("concurrency")
    result.targets.append(h.Target(
        "P5", f"{NODES} nodes awaited concurrently / one node, wall time "
              f"(stand-in delay {mode.concurrency_delay:g} s)",
        f"{ratio:.2f}x ({h.ms(eight)} vs {h.ms(one)})", f"<= {P5_GOAL}x", ratio <= P5_GOAL))
    cores = os.cpu_count() or 1
    result.targets.append(h.Target(
        "P5'", "the same with references uploaded by an earlier run (I/O only)",
        f"{uploaded_ratio:.2f}x ({h.ms(h.median(times['eight_uploaded']))} vs {h.ms(one)})",
        f"<= {P5_GOAL}x", uploaded_ratio <= P5_GOAL))
    rows = [[label, h.ms(h.median(times[kind])), f"{cpu[kind][0]:.2f} s", f"{cpu[kind][1]:.2f} s"]
            for kind, label in (("one", "1 node"), ("eight", f"{NODES} nodes"),
                                ("eight_uploaded", f"{NODES} nodes, references uploaded before"))]
    result.tables.append(
        f"**Concurrency** (medians of {mode.runs} interleaved rounds; stand-in delay "
        f"{mode.concurrency_delay:g} s; client and stand-in share this machine's {cores} cores)\n\n"
        + h.markdown_table(["", "wall", "pack CPU (this process)", "stand-in CPU"], rows))
    result.numbers = {"p5_ratio": ratio, "p5_uploaded_ratio": uploaded_ratio, "one": times["one"], "eight": times["eight"], "cpu": cpu}
    return result
