"""First run over a real uplink: two fresh photo references, the stand-in throttling everything
the client sends (one token bucket over all request bodies) to 20 and 100 Mbit/s. The photos
carry typical sensor noise (harness.TYPICAL_PHOTO_NOISE); at 20 Mbit/s the heavy-noise photos of
the other benchmarks are measured too, the costliest to send for a lossy encoding.

Loopback makes bytes free; here they cost what they cost on a home or office connection. Overhead
= wall time minus the stand-in's processing delay, as in P1; every round uses fresh pixels, so
nothing comes from the upload cache. Bytes per reference are counted at the stand-in.
"""
from __future__ import annotations

import asyncio

from . import harness as h

U1_GOAL = 0.35
# (label, uplink in Mbit/s, noise of the photos); U1 is the first case.
CASES = (("typical photos", 20, h.TYPICAL_PHOTO_NOISE), ("typical photos", 100, h.TYPICAL_PHOTO_NOISE),
         ("heavy-noise photos", 20, h.PHOTO_NOISE))
MAX_ROUNDS = 7  # each baseline round at 20 Mbit/s sends ~4 MB: ~2 s


async def _measure(standin: h.StandIn, mode: h.Mode,
                   rounds: int) -> dict[tuple, dict[str, list]]:
    side = mode.side
    seeds = iter(range(20_000, 10**6))
    fal = h.new_fal_client()

    def fresh(noise: float = h.TYPICAL_PHOTO_NOISE) -> list:
        return [h.photo_like(side, side, next(seeds), noise) for _ in range(2)]

    async def timed(call) -> dict[str, float]:
        standin.clear()
        result = await call
        traffic = standin.traffic()
        return {"overhead": result.wall - standin.processing_delay,
                "upload_bytes": traffic["upload_bytes"], "request_bytes": traffic["request_bytes"]}

    measured: dict[tuple, dict[str, list]] = {}
    try:
        await h.run_pack(fresh())  # warm-up at loopback speed: pools, token, threads, imports
        await h.run_baseline(fal, fresh())
        for case in CASES:
            _, rate, noise = case
            standin.set_uplink(rate * 1e6 / 8)
            measured[case] = await h.interleaved(rounds, {
                "pack": lambda i, noise=noise: timed(h.run_pack(fresh(noise))),
                "baseline": lambda i, noise=noise: timed(h.run_baseline(fal, fresh(noise)))})
    finally:
        standin.set_uplink(None)
        await h.close_fal_client(fal)
    return measured


def _name(case: tuple) -> str:
    label, rate, _ = case
    return f"{label} {rate}mbit"


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    h.reset_pack_caches()
    rounds = min(mode.runs, MAX_ROUNDS)
    measured = asyncio.run(_measure(standin, mode, rounds))
    result = h.BenchResult("uplink")
    rows, numbers = [], {}
    for case, runs in measured.items():
        label, rate, _ = case
        ratio = h.paired_ratio([r["overhead"] for r in runs["pack"]],
                               [r["overhead"] for r in runs["baseline"]])
        med = {who: {key: h.median([r[key] for r in rows_]) for key in rows_[0]}
               for who, rows_ in runs.items()}
        numbers[_name(case)] = {"ratio": ratio, "medians": med}
        for who in ("pack", "baseline"):
            rows.append([label if who == "pack" else "", f"{rate} Mbit/s", who,
                         h.ms(med[who]["overhead"]), f"{med[who]['upload_bytes'] / 2:,.0f}",
                         f"{med[who]['request_bytes']:,.0f}",
                         f"{ratio:.2f}x" if who == "pack" else ""])
    u1, heavy = numbers[_name(CASES[0])], numbers[_name(CASES[-1])]
    ratio, med, heavy_ratio = u1["ratio"], u1["medians"], heavy["ratio"]
    result.targets.append(h.Target(
        "U1", f"first-run overhead, 2 fresh {mode.side}x{mode.side} photos, uplink "
              f"{CASES[0][1]} Mbit/s, pack / baseline (and with heavy-noise photos)",
        f"{ratio:.2f}x ({h.ms(med['pack']['overhead'])} vs {h.ms(med['baseline']['overhead'])}; "
        f"heavy noise {heavy_ratio:.2f}x)", f"<= {U1_GOAL}x", ratio <= U1_GOAL))
    result.tables.append(
        f"**First run over a throttled uplink** (medians of {rounds} interleaved rounds; the "
        "stand-in throttles every request body to the rate; overhead = wall minus the "
        f"{mode.processing_delay:g} s stand-in delay)\n\n"
        + h.markdown_table(["photos", "uplink", "", "overhead", "bytes sent per reference",
                            "all request bytes", "pack / baseline"], rows))
    result.numbers = numbers
    return result
