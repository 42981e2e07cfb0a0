"""P1 overhead per call and P2 completion-to-tensor latency, pack vs baseline, interleaved.

A call: 2 photo-like 1024x1024 references in, 1 output (~1 MP JPEG, as fal returns by default)
out as an IMAGE tensor. Overhead = wall time minus the stand-in's processing delay. Every round
uses fresh pixels so the pack's upload cache never helps (P4 measures that separately).
"""
from __future__ import annotations

import asyncio

from . import harness as h

P1_GOAL = 0.5
P2_GOAL = 0.15


async def _measure(standin: h.StandIn, mode: h.Mode) -> dict[str, list[dict[str, float]]]:
    side = mode.side
    fixtures = [[h.photo_like(side, side, 1000 + 2 * i), h.photo_like(side, side, 1001 + 2 * i)]
                for i in range(mode.runs + 1)]
    fal = h.new_fal_client()

    def breakdown(call: h.CallResult) -> dict[str, float]:
        submitted, completed = standin.job_times(call.request_id)
        return {"wall": call.wall, "overhead": call.wall - standin.processing_delay,
                "before_submit": submitted - call.started,
                "completion_to_tensor": call.finished - completed}

    async def pack(i: int) -> dict[str, float]:
        return breakdown(await h.run_pack(fixtures[i + 1]))

    async def baseline(i: int) -> dict[str, float]:
        return breakdown(await h.run_baseline(fal, fixtures[i + 1]))

    try:
        # Warm-up (untimed): connection pools, storage token, worker threads, lazy imports.
        await h.run_pack(fixtures[0])
        await h.run_baseline(fal, fixtures[0])
        return await h.interleaved(mode.runs, {"pack": pack, "baseline": baseline})
    finally:
        await h.close_fal_client(fal)


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    h.reset_pack_caches()
    runs = asyncio.run(_measure(standin, mode))
    med = {who: {key: h.median([r[key] for r in rows]) for key in rows[0]} for who, rows in runs.items()}
    ratio = h.paired_ratio([r["overhead"] for r in runs["pack"]], [r["overhead"] for r in runs["baseline"]])
    p2 = med["pack"]["completion_to_tensor"]
    result = h.BenchResult("overhead")
    result.targets.append(h.Target(
        "P1", f"overhead per call (2 refs {mode.side}x{mode.side}, 1 output ~1 MP), pack / baseline",
        f"{ratio:.2f}x ({h.ms(med['pack']['overhead'])} vs {h.ms(med['baseline']['overhead'])})",
        f"<= {P1_GOAL}x", ratio <= P1_GOAL))
    result.targets.append(h.Target(
        "P2", "completion-to-tensor latency, pack (median)",
        f"{h.ms(p2)} (baseline {h.ms(med['baseline']['completion_to_tensor'])})",
        f"<= {h.ms(P2_GOAL)}", p2 <= P2_GOAL))
    rows = [[who, h.ms(m["wall"]), h.ms(m["overhead"]), h.ms(m["before_submit"]),
             h.ms(m["completion_to_tensor"])] for who, m in med.items()]
    result.tables.append(
        f"**Per-call breakdown** (medians of {mode.runs} interleaved rounds, stand-in delay "
        f"{mode.processing_delay:g} s subtracted; 'before submit' = tensor in -> job created at the "
        "stand-in, including its reference download/decode; 'completion to tensor' = job "
        "COMPLETED at the stand-in -> IMAGE tensor returned)\n\n"
        + h.markdown_table(["", "wall", "overhead", "before submit", "completion to tensor"], rows))
    result.numbers = {"p1_ratio": ratio, "p2_seconds": p2, "medians": med, "runs": runs}
    return result
