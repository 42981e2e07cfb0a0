"""C1: a two-step chain (Kontext -> Kontext, the step-1 result fed back as the only reference)
over a 20 Mbit/s uplink: what step 2 sends, how long it takes, and what fal receives.

The step-1 result is the stand-in's ~1 MP JPEG of a photo reference (typical sensor noise), so
step 2's reference is a 1 MP photo. "pack" is the pack as it is: step 2 sends the URL fal served
the result from. "re-upload" is the same pack with its table of served results emptied before
step 2: what it did before chaining (and what every pack does), the result's pixels encoded as a
reference and uploaded. Step 1 runs at loopback speed and is not measured; step 2 runs over the
throttled uplink. Overhead = step 2's wall time minus the stand-in's processing delay. PSNR is of
the file fal fetches in step 2 (the upload, or the file behind the URL) against the pixels the
step-2 node was given.
"""
from __future__ import annotations

import asyncio
import io
import json
import urllib.request

import numpy as np
import torch
from PIL import Image

from . import harness as h

C1_RATIO_GOAL = 0.5
UPLINK_MBIT = 20
MAX_ROUNDS = 7
STEP_2_PROMPT = "now make it look like an oil painting"
SENT_ROUTES = ("submit", *h.UPLOAD_ROUTES)


def _pixels(images) -> np.ndarray:
    """The step-1 result as the step-2 node turns it into a reference (uint8, rounded)."""
    return (images[0].clamp(0, 1) * 255).round().to(dtype=torch.uint8).numpy()


def _decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _what_fal_received(bodies: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """(how step 2 sent its reference, the bytes fal reads for it)."""
    submit = json.loads(next(body for route, body in bodies if route == "submit"))
    (url,) = submit["image_urls"]
    uploaded = [body for route, body in bodies if route in ("upload", "put_upload")]
    if uploaded:
        return "upload", uploaded[-1]
    with urllib.request.urlopen(url, timeout=10) as response:  # the stand-in's CDN on loopback
        return "url", response.read()


async def _chain(standin: h.StandIn, side: int, seed: int, reupload: bool) -> dict[str, float]:
    from fal_kontext.client import SHARED_SERVED_FILES

    standin.set_uplink(None)
    first = await h.run_pack([h.photo_like(side, side, seed, h.TYPICAL_PHOTO_NOISE)])
    if reupload:
        SHARED_SERVED_FILES.clear()
    standin.clear()
    standin.set_uplink(UPLINK_MBIT * 1e6 / 8)
    try:
        second = await h.run_pack([first.images], prompt=STEP_2_PROMPT)
    finally:
        standin.set_uplink(None)
    traffic = standin.traffic()
    how, received = _what_fal_received(standin.bodies(SENT_ROUTES))
    return {"overhead": second.wall - standin.processing_delay,
            "upload_bytes": traffic["upload_bytes"], "request_bytes": traffic["request_bytes"],
            "psnr": h.psnr(_decoded(received), _pixels(first.images)),
            "by_url": float(how == "url"), "reference_pixels": float(first.images[0, ..., 0].numel())}


async def _measure(standin: h.StandIn, mode: h.Mode, rounds: int) -> dict[str, list]:
    seeds = iter(range(30_000, 10**6))
    await h.run_pack([h.photo_like(mode.side, mode.side, next(seeds))])  # warm-up
    return await h.interleaved(rounds, {
        "pack": lambda i: _chain(standin, mode.side, next(seeds), reupload=False),
        "re-upload": lambda i: _chain(standin, mode.side, next(seeds), reupload=True)})


def _quality(psnr: float) -> str:
    return "exact (the same file)" if not np.isfinite(psnr) else f"{psnr:.1f} dB"


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    h.reset_pack_caches()
    rounds = min(mode.runs, MAX_ROUNDS)
    measured = asyncio.run(_measure(standin, mode, rounds))
    ratio = h.paired_ratio([r["overhead"] for r in measured["pack"]],
                           [r["overhead"] for r in measured["re-upload"]])
    med = {who: {key: h.median([r[key] for r in runs]) for key in runs[0] if key != "psnr"}
           for who, runs in measured.items()}
    worst = {who: min(r["psnr"] for r in runs) for who, runs in measured.items()}
    pack, before = med["pack"], med["re-upload"]
    megapixels = pack["reference_pixels"] / 1e6
    exact = not np.isfinite(worst["pack"]) and pack["by_url"] == 1.0
    result = h.BenchResult("chain")
    result.targets.append(h.Target(
        "C1", f"two-step chain, step 2 (the step-1 result, a {megapixels:.1f} MP photo, fed back) "
              f"over a {UPLINK_MBIT} Mbit/s uplink: bytes uploaded, overhead pack / re-upload, "
              "PSNR of what fal receives against the step-1 result",
        f"{pack['upload_bytes']:,.0f} bytes (re-upload {before['upload_bytes']:,.0f}); {ratio:.2f}x "
        f"({h.ms(pack['overhead'])} vs {h.ms(before['overhead'])}); {_quality(worst['pack'])} "
        f"(re-upload {_quality(worst['re-upload'])})",
        f"0 bytes, exact, <= {C1_RATIO_GOAL}x",
        pack["upload_bytes"] == 0 and exact and ratio <= C1_RATIO_GOAL))
    rows = [[who, h.ms(med[who]["overhead"]), f"{med[who]['upload_bytes']:,.0f}",
             f"{med[who]['request_bytes']:,.0f}", "URL" if med[who]["by_url"] else "upload",
             _quality(worst[who]), f"{ratio:.2f}x" if who == "pack" else ""]
            for who in ("pack", "re-upload")]
    result.tables.append(
        f"**Step 2 of a two-step chain over a {UPLINK_MBIT} Mbit/s uplink** (medians of {rounds} "
        "interleaved rounds; the step-1 result, the stand-in's ~1 MP JPEG of a photo, is step "
        "2's only reference; overhead = wall minus the "
        f"{mode.processing_delay:g} s stand-in delay; PSNR: the lowest of the rounds)\n\n"
        + h.markdown_table(["step 2", "overhead", "bytes uploaded", "all request bytes",
                            "reference sent as", "what fal receives vs the step-1 result",
                            "pack / re-upload"], rows))
    result.numbers = {"ratio": ratio, "medians": med,
                      "lowest_psnr": {who: (999.0 if not np.isfinite(value) else value)
                                      for who, value in worst.items()}}
    return result
