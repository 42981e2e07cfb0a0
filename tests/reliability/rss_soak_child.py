"""Child process of test_load_and_soak: node runs against an in-process stand-in, RSS and the
Python heap (tracemalloc) sampled, in a process of their own so that no other test's threads or
leftovers count.

The parent starts it with MALLOC_ARENA_MAX=1. glibc gives each thread its own malloc arena and
keeps what is freed there, so any threaded process grows RSS by tens of MB that are not a leak
(the soak showed +81 MB over 58 runs; with one arena, +2 MB over 208). With one arena, RSS shows
what tracemalloc cannot see: torch tensors, Pillow buffers, sockets. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers

import pytest  # noqa: E402  (MonkeyPatch installs the imitation of ComfyUI's modules)

from fake_comfy import FakeComfy  # noqa: E402
from node_calls import call_node, solid  # noqa: E402
from support import TEST_KEY  # noqa: E402


def rss_mb() -> float:
    """Resident memory once glibc has handed back what is free (it keeps freed pages at the top
    of its heap at its own discretion, which made the figure jump by ~4 MB under CPU load)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def measure(warm_up: int, runs: int) -> dict[str, float]:
    from fal_kontext.nodes.kontext_nodes import FalKontextMulti
    from fal_kontext.standin import StandInServer

    with StandInServer(processing_delay=0.01) as server:
        os.environ["FAL_KEY"] = TEST_KEY
        os.environ["FAL_KONTEXT_BASE_URL"] = server.base_url
        seeds = iter(range(1, 10_000))

        async def one_run() -> None:
            images, _, _ = await call_node(FalKontextMulti, prompt="soak", seed=next(seeds),
                                           images=solid((0.2, 0.5, 0.8)), use_result_cache=False)
            assert images.shape[0] == 1

        for _ in range(warm_up):
            await one_run()
        before = rss_mb()
        tracemalloc.start()
        halfway = 0
        for number in range(1, runs + 1):
            await one_run()
            if number == runs // 2:
                gc.collect()
                halfway = tracemalloc.get_traced_memory()[0]
        gc.collect()
        # The heap's growth over the second half of the runs: what each run leaves behind adds
        # up, while what only the latest runs still hold (their output tensors, a pooled
        # connection's buffers) is there at both ends and cancels out.
        heap_growth = (tracemalloc.get_traced_memory()[0] - halfway) / 2**20
        tracemalloc.stop()
        return {"runs": runs, "rss_before_mb": before, "growth_mb": rss_mb() - before,
                "heap_growth_mb": heap_growth, "submits": len(server.submits())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm-up", type=int, default=10)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with pytest.MonkeyPatch.context() as monkeypatch:
        FakeComfy().install(monkeypatch)
        print(json.dumps(asyncio.run(measure(args.warm_up, args.runs))))


if __name__ == "__main__":
    main()
