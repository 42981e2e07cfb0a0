"""P4: re-running a node with unchanged references sends no upload and no extra bytes.

The result cache is off (use_result_cache=False) so the second run really submits a job; only
the pack's per-process upload cache may spare the references. Counted at the stand-in.
"""
from __future__ import annotations

import asyncio

from . import harness as h


async def _two_runs(standin: h.StandIn, references, run) -> list[dict[str, int]]:
    traffic = []
    for _ in range(2):
        standin.clear()
        await run(references)
        traffic.append(standin.traffic())
    return traffic


async def _measure(standin: h.StandIn, mode: h.Mode) -> dict[str, list[dict[str, int]]]:
    side = mode.side
    fal = h.new_fal_client()
    try:
        pack = await _two_runs(standin, [h.photo_like(side, side, 41), h.photo_like(side, side, 42)],
                               h.run_pack)
        baseline = await _two_runs(standin, [h.photo_like(side, side, 43), h.photo_like(side, side, 44)],
                                   lambda refs: h.run_baseline(fal, refs))
    finally:
        await h.close_fal_client(fal)
    return {"pack": pack, "baseline": baseline}


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    h.reset_pack_caches()
    traffic = asyncio.run(_measure(standin, mode))
    first, second = traffic["pack"]
    extra = second["request_bytes"] - (first["request_bytes"] - first["upload_bytes"])
    met = second["upload_requests"] == 0 and second["upload_bytes"] == 0 and extra <= 0
    result = h.BenchResult("rerun")
    result.targets.append(h.Target(
        "P4", "re-run with unchanged references (result cache off): uploads / upload bytes on run 2",
        f"{second['upload_requests']} uploads, {second['upload_bytes']:,} bytes "
        f"(baseline: {traffic['baseline'][1]['upload_requests']} uploads, "
        f"{traffic['baseline'][1]['upload_bytes']:,} bytes)", "0 uploads, 0 extra bytes", met))
    rows = []
    for who, runs in traffic.items():
        for index, t in enumerate(runs, 1):
            rows.append([who, index, t["submits"], t["upload_requests"], f"{t['upload_bytes']:,}",
                         t["requests"], f"{t['request_bytes']:,}"])
    result.tables.append("**Traffic at the stand-in, run 1 vs unchanged re-run** (result cache off)\n\n"
                         + h.markdown_table(["", "run", "submits", "upload requests", "upload bytes",
                                             "all requests", "all request bytes"], rows))
    result.numbers = {"traffic": traffic, "extra_bytes_run2": extra}
    return result
