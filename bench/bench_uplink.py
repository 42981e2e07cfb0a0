"""First run over a real uplink: two fresh photo references, the stand-in throttling everything
the client sends (one token bucket over all request bodies) to 20 and 100 Mbit/s.

Loopback makes bytes free; here they cost what they cost on a home or office connection. Overhead
= wall time minus the stand-in's processing delay, as in P1; every round uses fresh pixels, so
nothing comes from the upload cache. Bytes per reference are counted at the stand-in.
"""
from __future__ import annotations

import asyncio

from . import harness as h

U1_GOAL = 0.35
RATES_MBIT = (20, 100)
MAX_ROUNDS = 7  # each baseline round at 20 Mbit/s sends ~4 MB: ~2 s


async def _measure(standin: h.StandIn, mode: h.Mode, rounds: int) -> dict[int, dict[str, list]]:
    side = mode.side
    seeds = iter(range(20_000, 10**6))
    fal = h.new_fal_client()

    def fresh() -> list:
        return [h.photo_like(side, side, next(seeds)), h.photo_like(side, side, next(seeds))]

    async def timed(call) -> dict[str, float]:
        standin.clear()
        result = await call
        traffic = standin.traffic()
        return {"overhead": result.wall - standin.processing_delay,
                "upload_bytes": traffic["upload_bytes"], "request_bytes": traffic["request_bytes"]}

    measured: dict[int, dict[str, list]] = {}
    try:
        await h.run_pack(fresh())  # warm-up at loopback speed: pools, token, threads, imports
        await h.run_baseline(fal, fresh())
        for rate in RATES_MBIT:
            standin.set_uplink(rate * 1e6 / 8)
            measured[rate] = await h.interleaved(rounds, {
                "pack": lambda i: timed(h.run_pack(fresh())),
                "baseline": lambda i: timed(h.run_baseline(fal, fresh()))})
    finally:
        standin.set_uplink(None)
        await h.close_fal_client(fal)
    return measured


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    h.reset_pack_caches()
    rounds = min(mode.runs, MAX_ROUNDS)
    measured = asyncio.run(_measure(standin, mode, rounds))
    result = h.BenchResult("uplink")
    rows, numbers = [], {}
    for rate, runs in measured.items():
        ratio = h.paired_ratio([r["overhead"] for r in runs["pack"]],
                               [r["overhead"] for r in runs["baseline"]])
        med = {who: {key: h.median([r[key] for r in rows_]) for key in rows_[0]}
               for who, rows_ in runs.items()}
        numbers[f"{rate}mbit"] = {"ratio": ratio, "medians": med}
        if rate == RATES_MBIT[0]:
            result.targets.append(h.Target(
                "U1", f"first-run overhead, 2 fresh {mode.side}x{mode.side} photos, uplink "
                      f"{rate} Mbit/s, pack / baseline",
                f"{ratio:.2f}x ({h.ms(med['pack']['overhead'])} vs "
                f"{h.ms(med['baseline']['overhead'])})", f"<= {U1_GOAL}x", ratio <= U1_GOAL))
        for who in ("pack", "baseline"):
            rows.append([f"{rate} Mbit/s", who, h.ms(med[who]["overhead"]),
                         f"{med[who]['upload_bytes'] / 2:,.0f}",
                         f"{med[who]['request_bytes']:,.0f}",
                         f"{ratio:.2f}x" if who == "pack" else ""])
    result.tables.append(
        f"**First run over a throttled uplink** (medians of {rounds} interleaved rounds; the "
        "stand-in throttles every request body to the rate; overhead = wall minus the "
        f"{mode.processing_delay:g} s stand-in delay)\n\n"
        + h.markdown_table(["uplink", "", "overhead", "bytes sent per reference",
                            "all request bytes", "pack / baseline"], rows))
    result.numbers = numbers
    return result
