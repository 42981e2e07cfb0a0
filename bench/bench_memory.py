"""P6: peak memory for 4 outputs, above the process's idle baseline, in fresh subprocesses.

Each measurement is a new Python process: imports done and a tiny warm-up call made (so lazy
imports, thread pools and connection pools exist: that is "idle"), then the peak RSS is reset
(/proc/self/clear_refs) and one call runs; peak = VmHWM - idle VmRSS. tracemalloc's peak
(Python + numpy allocations, not Pillow's internal buffers) is shown beside it.

The stand-in renders ~1 MP per aspect ratio whatever is asked, so the full-node figure is for
4 x ~1 MP outputs. The 2 MP figure measures the node's decode stage alone (fal result bytes ->
IMAGE batch, as the node does it: the pack's decoder per image in threads, then stack_results) on 4 JPEGs of 1448x1448 (2.1 MP) made in the subprocess before its idle point.
glibc's mmap threshold is pinned so freed fixture memory leaves RSS instead of hiding peaks.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from . import harness as h

P6_GOAL = 1.5
OUTPUTS = 4
DECODE_SIDE = 1448  # 2.1 MP
MMAP_THRESHOLD = 256 * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _jpeg(side: int, seed: int) -> bytes:
    from PIL import Image

    frame = (h.photo_like(side, side, seed)[0].numpy() * 255).round().astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=90)  # what the stand-in returns
    return buffer.getvalue()


async def _pack_decode_stage(blobs: list[bytes]):
    """What the node does with fal's result bytes: decode each in a worker thread, then stack."""
    try:
        from fal_kontext.jobs.result_images import decode_image
    except ImportError:  # before the decoder moved out of the nodes package
        from fal_kontext.nodes.image_tensors import decode_image
    from fal_kontext.nodes.image_tensors import stack_results

    frames = await asyncio.gather(*(asyncio.to_thread(decode_image, blob) for blob in blobs))
    return await asyncio.to_thread(stack_results, list(frames))


async def _child(kind: str, base_url: str, cdn_url: str, run_url: str, side: int) -> dict:
    standin = SimpleNamespace(base_url=base_url, cdn_url=cdn_url, run_url=run_url)
    h.configure_pack(standin)
    h.point_fal_client_at(standin)
    fal = h.new_fal_client()
    tiny = [h.photo_like(32, 32, 1), h.photo_like(32, 32, 2)]
    await (h.run_pack(tiny) if kind.startswith("pack") else h.run_baseline(fal, tiny))  # warm-up
    if kind.endswith("decode"):
        from .baseline import png_to_tensor

        blobs = [_jpeg(DECODE_SIDE, 90 + i) for i in range(OUTPUTS)]
        await _pack_decode_stage([_jpeg(32, 1)])  # warm-up

        async def work():
            if kind == "pack-decode":
                return await _pack_decode_stage(blobs)
            import torch
            return torch.cat([png_to_tensor(b) for b in blobs])  # the peer's loop
    else:
        references = [h.photo_like(side, side, 61), h.photo_like(side, side, 62)]

        async def work():
            overrides = {"num_images": OUTPUTS, "aspect_ratio": "1:1"}
            call = await (h.run_pack(references, **overrides) if kind == "pack"
                          else h.run_baseline(fal, references, **overrides))
            return call.images
    gc.collect()
    idle = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS
    tracemalloc.start()
    images = await work()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status_kib("VmHWM")
    await h.close_fal_client(fal)
    return {"kind": kind, "idle_bytes": idle * 1024, "peak_above_idle": (peak - idle) * 1024,
            "traced_peak": traced_peak, "output_bytes": images.numel() * images.element_size(),
            "shape": list(images.shape)}


def _measure_in_subprocess(standin: h.StandIn, kind: str, side: int) -> dict:
    command = [sys.executable, "-m", "bench.bench_memory", "--child", kind, "--base-url",
               standin.base_url, "--cdn-url", standin.cdn_url, "--run-url", standin.run_url,
               "--side", str(side)]
    # A fixed mmap threshold stops glibc from keeping big freed blocks (fixtures, warm-up) in
    # the heap, where a later allocation would reuse them unseen by RSS.
    env = {**h.subprocess_env(), "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          cwd=h.REPO_ROOT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _samples(standin: h.StandIn, mode: h.Mode, kinds: tuple[str, ...]) -> dict[str, list[dict]]:
    """One measurement per kind and round, each in a fresh child, rounds interleaved. The smoke
    mode only proves every child works, so it runs them side by side (figures meaningless)."""
    if mode.name == "smoke":
        with ThreadPoolExecutor(len(kinds)) as pool:
            measured = pool.map(lambda kind: _measure_in_subprocess(standin, kind, mode.side), kinds)
            return {kind: [sample] for kind, sample in zip(kinds, measured)}
    samples: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for round_index in range(mode.memory_runs):
        for kind in (kinds if round_index % 2 == 0 else kinds[::-1]):
            samples[kind].append(_measure_in_subprocess(standin, kind, mode.side))
    return samples


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    kinds = ("pack", "baseline", "pack-decode", "baseline-decode")
    samples = _samples(standin, mode, kinds)
    med = {kind: {key: h.median([s[key] for s in rows]) for key in
                  ("idle_bytes", "peak_above_idle", "traced_peak", "output_bytes")}
           for kind, rows in samples.items()}
    ratio = {kind: m["peak_above_idle"] / m["output_bytes"] for kind, m in med.items()}
    shapes = {kind: rows[0]["shape"] for kind, rows in samples.items()}
    result = h.BenchResult("memory")
    pack, decode = med["pack"], med["pack-decode"]
    result.targets.append(h.Target(
        "P6", f"peak RSS above idle / output tensors, {OUTPUTS} outputs (full node: stand-in "
              f"renders {shapes['pack'][1]}x{shapes['pack'][2]}; decode stage: 2.1 MP)",
        f"{ratio['pack']:.2f}x full node ({pack['peak_above_idle'] / 2**20:.0f} MiB for "
        f"{pack['output_bytes'] / 2**20:.0f} MiB); {ratio['pack-decode']:.2f}x decode at 2 MP "
        f"({decode['peak_above_idle'] / 2**20:.0f} MiB for {decode['output_bytes'] / 2**20:.0f} MiB)",
        f"<= {P6_GOAL}x", max(ratio["pack"], ratio["pack-decode"]) <= P6_GOAL))
    rows = [[kind, "x".join(map(str, shapes[kind])), f"{m['idle_bytes'] / 2**20:.0f} MiB",
             f"{m['output_bytes'] / 2**20:.0f} MiB", f"{m['peak_above_idle'] / 2**20:.0f} MiB",
             f"{ratio[kind]:.2f}x", f"{m['traced_peak'] / 2**20:.0f} MiB"]
            for kind, m in med.items()]
    result.tables.append(
        f"**Peak memory** (fresh subprocess each, median of {mode.memory_runs}; inputs: 2 "
        f"references of {mode.side}x{mode.side})\n\n"
        + h.markdown_table(["", "output shape", "idle RSS", "output tensors", "peak RSS above idle",
                            "peak / output", "tracemalloc peak"], rows))
    result.numbers = {"ratios": ratio, "medians": med}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="one P6 memory measurement (run by bench_memory)")
    parser.add_argument("--child", required=True,
                        choices=("pack", "baseline", "pack-decode", "baseline-decode"))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--cdn-url", required=True)
    parser.add_argument("--run-url", required=True)
    parser.add_argument("--side", type=int, default=1024)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_child(args.child, args.base_url, args.cdn_url, args.run_url,
                                        args.side))))


if __name__ == "__main__":
    main()
