"""The one place that converts between ComfyUI IMAGE tensors and encoded image bytes.

IMAGE tensors are float `[B, H, W, C]`, values 0..1, channels last (see ComfyUI's
images_and_masks docs). References go out as uint8 frames, encoded as JPEG or PNG by the rule
in kontext/reference_encoding.py (torch-free, so the CLI shares it); results come back as
float32 RGB frames stacked into one batch.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from ..jobs.result_images import frame_key
from ..kontext.errors import InvalidInputError
from ..kontext.reference_encoding import (PNG_ZLIB_STRATEGY, downscale_frame, encode_png,
                                          encode_reference)

__all__ = ["reference_frames", "frame_key", "downscale_frame", "encode_png", "encode_reference",
           "stack_results", "PNG_ZLIB_STRATEGY"]
# zlib level 1: several times faster than Pillow's default 6 for a few percent more bytes.

_CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_CONVERSION_BLOCK_VALUES = 4_000_000  # ~16 MB of float32 per step of reference_frames


def reference_frames(input_name: str, image: object) -> list[np.ndarray]:
    """Validate an IMAGE input (`[B,H,W,C]` or `[H,W,C]`, C in 1..4) and split it into uint8
    HxWxC frames in batch order. Alpha is kept; conversion is vectorised over row blocks."""
    if not isinstance(image, torch.Tensor):
        raise InvalidInputError(input_name, f"is not an IMAGE (got {type(image).__name__}): "
                                            "connect an IMAGE output to it")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    elif image.ndim != 4:
        raise InvalidInputError(input_name, f"is not shaped [batch, height, width, channels] "
                                            f"(got {image.ndim} dimensions, {tuple(image.shape)}): "
                                            "convert a MASK to an IMAGE first")
    batch, height, width, channels = image.shape
    if channels not in _CHANNEL_MODES:
        hint = (" (it looks channels-first; IMAGE tensors are channels-last)"
                if image.shape[1] in _CHANNEL_MODES else "")
        raise InvalidInputError(input_name, f"has {channels} channels in shape {tuple(image.shape)};"
                                            " expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)"
                                            + hint)
    if batch == 0:
        raise InvalidInputError(input_name, "is an empty batch (0 images); "
                                            "check the node that produced it")
    if height == 0 or width == 0:
        raise InvalidInputError(input_name, f"has zero size ({width}x{height}); "
                                            "check the node that produced it")
    if not image.is_floating_point():
        raise InvalidInputError(input_name, f"has dtype {image.dtype}; IMAGE tensors hold floats 0..1")
    pixels = np.empty((batch, height, width, channels), dtype=np.uint8)
    # Row blocks keep the temporary float copies small even for an 8k frame.
    rows_per_block = max(1, _CONVERSION_BLOCK_VALUES // (width * channels))
    for index in range(batch):
        for top in range(0, height, rows_per_block):
            block = image[index, top:top + rows_per_block]
            # Checked before the float32 cast so a finite float64 can't become inf. The sum is
            # one fast pass and finite whenever every value is; only a non-finite sum (a NaN,
            # an inf, or an overflow of huge values) pays for the exact element-wise check.
            if not torch.isfinite(block.sum()) and not torch.isfinite(block).all():
                raise InvalidInputError(input_name, "contains NaN or infinite values; "
                                                    "check the node that produced it")
            # Clamp because some nodes overshoot 0..1 slightly (resamplers, blends); rounding,
            # not truncation, so a uint8 -> float -> uint8 round trip is exact. The rounded
            # floats are whole numbers, so copy_'s cast into the uint8 slot is exact too.
            as_float = block.to(device="cpu", dtype=torch.float32)
            slot = torch.from_numpy(pixels[index, top:top + rows_per_block])
            slot.copy_(as_float.clamp(0, 1).mul_(255).round_())
    return list(pixels)


def stack_results(frames: list[np.ndarray]) -> torch.Tensor:
    """Stack uint8 HxWx3 frames into one `[B,H,W,3]` float32 0..1 CPU tensor, converting each
    frame straight into its slot. Frames whose size differs from the first are center-cropped
    to its aspect and resized to its size (Pillow LANCZOS), as ComfyUI core does when batching."""
    if not frames:
        raise ValueError("stack_results needs at least one frame")
    height, width = frames[0].shape[:2]
    batch = np.empty((len(frames), height, width, 3), dtype=np.float32)
    for slot, frame in zip(batch, frames):
        if frame.shape[:2] != (height, width):
            frame = np.asarray(ImageOps.fit(Image.fromarray(frame), (width, height),
                                            Image.Resampling.LANCZOS))
        np.divide(frame, 255, out=slot, dtype=np.float32)
    return torch.from_numpy(batch)
