"""P3: IMAGE tensor -> PNG bytes for one 1024x1024 frame, the pack's path vs Pillow alone.

"Pillow alone" encodes an already-converted uint8 frame with the pack's PNG settings, so the
ratio is what the pack adds on top of the encoder (validation, float->uint8, content hash).
The peer path (ComfyUI conversion + Pillow's default level 6) is shown for reference.
"""
from __future__ import annotations

import io
import time
from typing import Callable

from PIL import Image

from . import harness as h
from .baseline import tensor_to_png

P3_GOAL = 1.2


def _seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(standin: h.StandIn | None, mode: h.Mode) -> h.BenchResult:
    from fal_kontext.nodes.image_tensors import (DEFAULT_PNG_COMPRESS_LEVEL, PNG_ZLIB_STRATEGY,
                                                 reference_frames)
    from fal_kontext.nodes.references import collect_references

    side = mode.side
    tensor = h.photo_like(side, side, 7)
    frame = reference_frames("images", tensor)[0]  # uint8, prepared outside the timing

    def pack() -> bytes:
        # The node's real path: validate + convert + hash, then the lazy encoder.
        (reference,) = collect_references({"images": tensor}, ("images",), 0.0)
        return reference.encode()[0]

    def pack_convert_only() -> object:
        return reference_frames("images", tensor)

    def pillow_alone() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "PNG", compress_level=DEFAULT_PNG_COMPRESS_LEVEL,
                                    compress_type=PNG_ZLIB_STRATEGY)
        return buffer.getvalue()

    def peer() -> bytes:
        return tensor_to_png(tensor[0])

    contenders = {"pack": pack, "pack_convert": pack_convert_only, "pillow": pillow_alone,
                  "peer": peer}
    for action in contenders.values():  # warm-up
        action()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(mode.png_reps):
        for name in (names if round_index % 2 == 0 else names[::-1]):
            times[name].append(_seconds(contenders[name]))
    ratio = h.paired_ratio(times["pack"], times["pillow"])
    sizes = {"pack": len(pack()), "pillow": len(pillow_alone()), "peer": len(peer())}
    med = {name: h.median(values) for name, values in times.items()}
    result = h.BenchResult("png")
    result.targets.append(h.Target(
        "P3", f"tensor -> PNG bytes, {side}x{side} frame, pack / Pillow alone with the same "
              f"settings (level {DEFAULT_PNG_COMPRESS_LEVEL}, RLE strategy)",
        f"{ratio:.2f}x ({h.ms(med['pack'])} vs {h.ms(med['pillow'])})", f"<= {P3_GOAL}x",
        ratio <= P3_GOAL))
    raw = side * side * 3
    rows = [
        ["pack: validate + convert + hash + PNG (level 1, RLE)", f"{med['pack'] * 1000:.1f} ms",
         f"{sizes['pack'] / 1e6:.2f} MB ({sizes['pack'] / raw:.0%})"],
        ["pack: validate + convert only", f"{med['pack_convert'] * 1000:.1f} ms", ""],
        ["Pillow alone, uint8 -> PNG (level 1, RLE)", f"{med['pillow'] * 1000:.1f} ms",
         f"{sizes['pillow'] / 1e6:.2f} MB ({sizes['pillow'] / raw:.0%})"],
        ["peer: ComfyUI conversion + PNG default (level 6)", f"{med['peer'] * 1000:.1f} ms",
         f"{sizes['peer'] / 1e6:.2f} MB ({sizes['peer'] / raw:.0%})"],
    ]
    result.tables.append(f"**Tensor -> PNG, {side}x{side} photo-like frame** (median of "
                         f"{mode.png_reps} interleaved repetitions)\n\n"
                         + h.markdown_table(["path", "time", "PNG size (of raw RGB)"], rows))
    result.numbers = {"p3_ratio": ratio, "medians": med, "sizes": sizes}
    return result
