"""S1 status traffic per job and S2 completion-to-result latency: the pack's FalClient vs fal_client.

One job of a fixed duration (20 s by default, like issue 11's criterion) is run to completion by
each client in turn against the stand-in (its own process). The stand-in's request records say
how many status-type requests (status polls + status-stream connections) named that job, and
when the first result fetch arrived after the job completed. The reference is an inline data URI,
so no upload traffic is involved.

    python -m bench.bench_status_requests                 # one 20 s job per client
    python -m bench.bench_status_requests --duration 2    # shorter
    python -m bench.bench_status_requests --smoke         # ~1 s job, for a quick check
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import sys
import time
from typing import Any

from PIL import Image

from . import harness as h

S1_GOAL = 4  # status-type requests for a 20 s job
S2_GOAL = 0.05  # completion -> result fetch on loopback, seconds
STATUS_ROUTES = ("status", "status_stream")
# Job duration per harness mode when run from run_all (smoke must stay within seconds).
DURATION_BY_MODE = {"smoke": 1.0, "quick": 20.0, "full": 20.0}


def _reference_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _arguments() -> dict[str, Any]:
    return {"prompt": h.PROMPT, "image_urls": [_reference_uri()], "num_images": 1,
            "output_format": "jpeg", "seed": 1}


async def _pack_job(standin: h.StandIn) -> tuple[str, float]:
    from fal_kontext.client import FalClient

    ids: list[str] = []
    started = time.monotonic()
    async with FalClient(h.BENCH_KEY, base_url=standin.base_url) as fal:
        await fal.run(h.ENDPOINT, _arguments(), on_submit=lambda handle: ids.append(handle.request_id))
    return ids[0], time.monotonic() - started


async def _fal_client_job(standin: h.StandIn) -> tuple[str, float]:
    fal = h.new_fal_client()
    ids: list[str] = []
    started = time.monotonic()
    try:
        await fal.subscribe(h.ENDPOINT, _arguments(), on_enqueue=ids.append)
    finally:
        await h.close_fal_client(fal)
    return ids[0], time.monotonic() - started


def _figures(standin: h.StandIn, request_id: str, wall: float) -> dict[str, float]:
    traffic = standin.job_traffic(request_id)
    completed = traffic["completed_at"]
    routes = traffic["routes"]
    after = [at for route, at in routes if route == "result" and completed is not None and at >= completed]
    return {
        "status_polls": sum(1 for route, _ in routes if route == "status"),
        "stream_connections": sum(1 for route, _ in routes if route == "status_stream"),
        "status_type": sum(1 for route, _ in routes if route in STATUS_ROUTES),
        "result_fetches": sum(1 for route, _ in routes if route == "result"),
        "completion_to_result": (min(after) - completed) if after else float("nan"),
        "wall": wall,
    }


def measure(standin: h.StandIn, duration: float) -> dict[str, dict[str, float]]:
    """Figures per client for one job of `duration` seconds each (run one after the other)."""
    h.point_fal_client_at(standin)
    standin.set_delay(duration)
    figures = {}
    for name, job in (("pack (FalClient.run)", _pack_job), ("fal_client 1.0.3 (subscribe)", _fal_client_job)):
        request_id, wall = asyncio.run(job(standin))
        figures[name] = _figures(standin, request_id, wall)
    return figures


def table(figures: dict[str, dict[str, float]]) -> str:
    rows = [[name, int(f["status_polls"]), int(f["stream_connections"]), int(f["status_type"]),
             int(f["result_fetches"]), h.ms(f["completion_to_result"]), f"{f['wall']:.1f} s"]
            for name, f in figures.items()]
    return h.markdown_table(["client", "status polls", "stream connections", "status-type total",
                             "result fetches", "completion -> result fetch", "wall"], rows)


def targets(figures: dict[str, dict[str, float]], duration: float) -> list[h.Target]:
    pack = next(f for name, f in figures.items() if name.startswith("pack"))
    other = next(f for name, f in figures.items() if not name.startswith("pack"))
    # The request budget is issue 11's for a 20 s job; shorter jobs get the same budget.
    return [
        h.Target("S1", f"status-type requests for one {duration:g} s job, pack",
                 f"{int(pack['status_type'])} (fal_client {int(other['status_type'])})",
                 f"<= {S1_GOAL}", pack["status_type"] <= S1_GOAL),
        h.Target("S2", "completion -> result fetch, pack",
                 f"{h.ms(pack['completion_to_result'])} (fal_client {h.ms(other['completion_to_result'])})",
                 f"<= {h.ms(S2_GOAL)}", pack["completion_to_result"] <= S2_GOAL),
    ]


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    """run_all's entry point: the job lasts DURATION_BY_MODE[mode] seconds."""
    duration = DURATION_BY_MODE.get(mode.name, 20.0)
    previous = standin.processing_delay
    try:
        figures = measure(standin, duration)
    finally:
        standin.set_delay(previous)
    result = h.BenchResult("status_requests")
    result.targets.extend(targets(figures, duration))
    result.tables.append(table(figures))
    result.numbers = figures
    result.notes.append(
        f"One {duration:g} s job per client. Status-type = status polls + status-stream "
        "connections naming the job, counted by the stand-in; latency = first result fetch "
        "after the stand-in's completion time (same machine clock).")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_status_requests", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="job length in seconds")
    parser.add_argument("--smoke", action="store_true", help="a 1 s job (overrides --duration)")
    args = parser.parse_args(argv)
    duration = 1.0 if args.smoke else args.duration
    with h.StandIn(duration) as standin:
        h.configure_pack(standin)
        figures = measure(standin, duration)
    print(f"One {duration:g} s job per client against the stand-in:\n")
    print(table(figures))
    print()
    for target in targets(figures, duration):
        print(f"{target.name}: {target.description}: {target.measured} (goal {target.goal}: "
              f"{target.verdict.strip('*')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
