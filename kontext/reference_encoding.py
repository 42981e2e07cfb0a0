"""uint8 frames -> the bytes a reference is sent as: downscale, then one encoding per image.

The rule (constants in kontext/models.py, measurements in bench/results.md "png"):

- `lossless` forced, an alpha channel, or a single (gray) channel: PNG, pixel-exact.
- a graphic (few distinct colours in a pixel sample: flat fills, line art, text): PNG at
  Pillow's default level, pixel-exact and no bigger than Pillow's default PNG (forced or alpha
  graphics too; photo-like lossless frames use the fast level 1 + RLE).
- anything else is a photo: baseline JPEG, 4:4:4, optimised Huffman tables and flat
  quantisation tables (`jpeg_quantisation_tables`), which hold PSNR >= 40 dB for any content.

Numpy and Pillow only (no torch), so the CLI uses the same rule as the nodes.
"""
from __future__ import annotations

import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image

from . import models as m

PNG = "image/png"
JPEG = "image/jpeg"
# zlib's run-length strategy: ~30% faster than the default strategy at level 1 and as small as
# level 6 on photos (bench/bench_png.py); Pillow hands `compress_type` to zlib as the strategy.
PNG_ZLIB_STRATEGY = zlib.Z_RLE


@dataclass(frozen=True)
class EncodedReference:
    data: bytes
    content_type: str
    kind: str  # "photo", "graphic", "alpha", "gray" or "forced": why this encoding was chosen


def encoding_tag(encoding: str) -> str:
    """What the upload cache key needs to know about how a frame is sent: the mode plus every
    constant the rule uses, so a changed rule or quality never reuses a stale upload."""
    if encoding not in m.REFERENCE_ENCODINGS:
        raise ValueError(f"reference_encoding must be one of {', '.join(m.REFERENCE_ENCODINGS)}")
    if encoding == "lossless":
        return "png"
    return (f"auto-jpeg-step{m.REFERENCE_JPEG_STEP}-{m.REFERENCE_JPEG_FINE_STEP}"
            f"b{m.REFERENCE_JPEG_FINE_BAND}-{m.REFERENCE_JPEG_SUBSAMPLING}"
            f"-g{m.REFERENCE_GRAPHIC_MAX_COLOURS}-{m.REFERENCE_GRAPHIC_PIXELS_PER_COLOUR}")


def reference_keys(content: str, max_megapixels: float, encoding: str) -> tuple[str, str]:
    """(key, identity) of a reference whose pixels `content` names (see pipeline.Reference):
    the key adds every constant of the rule (uploads), the identity only the user's mode
    (result cache and job ledger)."""
    pixels = f"{content}:{max_megapixels:g}mp"
    return f"{pixels}:{encoding_tag(encoding)}", f"{pixels}:{encoding}"


def encode_reference(frame: np.ndarray, encoding: str = m.REFERENCE_ENCODING_DEFAULT) -> EncodedReference:
    """Encode a uint8 HxWxC frame (C = 1..4) by the rule in this module's docstring."""
    kind = reference_kind(frame, encoding)
    if kind == "photo":
        return EncodedReference(encode_jpeg(frame), JPEG, kind)
    # Graphics (also forced-lossless or alpha ones) get Pillow's default level, where level 1 +
    # RLE is 1.2-1.7x bigger; photo-like pixels the fast level, as small there and 2x faster.
    graphic = kind == "graphic" or (kind in ("alpha", "forced") and looks_like_graphic(frame))
    level = m.PNG_GRAPHIC_COMPRESS_LEVEL if graphic else m.PNG_FAST_COMPRESS_LEVEL
    return EncodedReference(encode_png(frame, level), PNG, kind)


def reference_kind(frame: np.ndarray, encoding: str) -> str:
    """Which branch of the rule a frame takes (see the module docstring)."""
    encoding_tag(encoding)  # validates the mode
    channels = frame.shape[2] if frame.ndim == 3 else 1
    if encoding == "lossless":
        return "forced"
    if channels in (2, 4):
        return "alpha"
    if channels == 1:
        return "gray"  # a third of RGB's bytes already; 256 levels say nothing about content
    return "graphic" if looks_like_graphic(frame) else "photo"


def looks_like_graphic(frame: np.ndarray) -> bool:
    """True when a ~16k-pixel sample of the frame holds few distinct colours (at most
    REFERENCE_GRAPHIC_MAX_COLOURS, and at most one per REFERENCE_GRAPHIC_PIXELS_PER_COLOUR)."""
    height, width = frame.shape[:2]
    stride = max(1, math.isqrt(height * width // m.REFERENCE_COLOUR_SAMPLE_PIXELS))
    sample = np.ascontiguousarray(frame[::stride, ::stride]).reshape(-1, frame.shape[-1]
                                                                     if frame.ndim == 3 else 1)
    packed = np.zeros(len(sample), dtype=np.uint32)
    for channel in range(sample.shape[1]):
        packed |= sample[:, channel].astype(np.uint32) << (8 * channel)
    # Relative too, so a thumbnail photo (whose every pixel may differ) is not a "graphic".
    limit = min(m.REFERENCE_GRAPHIC_MAX_COLOURS, len(packed) // m.REFERENCE_GRAPHIC_PIXELS_PER_COLOUR)
    return _distinct_count(packed) <= limit


def _distinct_count(values: np.ndarray) -> int:
    # Sorting and counting the steps is ~15x faster than np.unique on 16k values (numpy 2).
    ordered = np.sort(values)
    return int(len(ordered) > 0) + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def encode_jpeg(frame: np.ndarray) -> bytes:
    """JPEG bytes of a uint8 RGB (or gray) frame with the pack's photo settings."""
    settings = {"qtables": jpeg_quantisation_tables(), "subsampling": m.REFERENCE_JPEG_SUBSAMPLING}
    try:
        return _save(frame, "JPEG", optimize=True, **settings)
    except OSError:
        # Optimised tables make Pillow hold the whole file in a buffer of 2 bytes a pixel; very
        # noisy frames need more ("broken data stream"). The standard tables stream instead.
        return _save(frame, "JPEG", optimize=False, **settings)


def jpeg_quantisation_tables() -> list[list[int]]:
    """Luma and chroma tables in natural (row-major) order: REFERENCE_JPEG_STEP everywhere, the
    finer step where row + column <= REFERENCE_JPEG_FINE_BAND (smooth gradients live there)."""
    table = [m.REFERENCE_JPEG_FINE_STEP if row + column <= m.REFERENCE_JPEG_FINE_BAND
             else m.REFERENCE_JPEG_STEP for row in range(8) for column in range(8)]
    return [table, list(table)]


def photo_settings() -> str:
    """The photo encoding in a few words, for tooltips and benchmark tables."""
    return (f"JPEG {m.REFERENCE_JPEG_SUBSAMPLING}, flat quantisation step {m.REFERENCE_JPEG_STEP} "
            f"({m.REFERENCE_JPEG_FINE_STEP} at the lowest frequencies), optimised")


def encode_png(frame: np.ndarray, compress_level: int = m.PNG_FAST_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of a uint8 HxWxC frame (C=1 L, 2 LA, 3 RGB, 4 RGBA); level 1 uses zlib's RLE
    strategy (fast on photos), other levels zlib's default strategy."""
    # Only the fast level sets a strategy; otherwise Pillow's defaults, byte for byte.
    strategy = {"compress_type": PNG_ZLIB_STRATEGY} if compress_level <= m.PNG_FAST_COMPRESS_LEVEL else {}
    return _save(frame, "PNG", compress_level=compress_level, **strategy)


def _save(frame: np.ndarray, image_format: str, **options: object) -> bytes:
    """Encode through a real file descriptor. Pillow then runs the whole encode with the GIL
    released (encode_to_file); into a BytesIO it holds the GIL for JPEG, so encodes on worker
    threads would take turns instead of using every core (bench/results.md, "png")."""
    with _scratch_file() as scratch:
        _to_pil(frame).save(scratch, format=image_format, **options)
        scratch.flush()
        scratch.seek(0)
        return scratch.read()


def _scratch_file() -> IO[bytes]:
    """An anonymous in-memory file on Linux (memfd), else an unnamed temporary file."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            return open(memfd_create("fal-kontext-reference", getattr(os, "MFD_CLOEXEC", 0)), "w+b")
        except OSError:
            pass  # e.g. a sandbox without memfd: the temporary file below works everywhere
    return tempfile.TemporaryFile()


def downscaled_size(width: int, height: int, max_megapixels: float) -> tuple[int, int]:
    """(width, height) a reference of this size is sent at: shrunk, aspect kept, to at most
    `max_megapixels` million pixels (0 or less: no limit). FLUX.2's price is computed from it."""
    limit = max_megapixels * m.PIXELS_PER_MEGAPIXEL
    if max_megapixels <= 0 or width * height <= limit:
        return width, height
    scale = math.sqrt(limit / (width * height))
    # Floor both sides so the result never exceeds the limit...
    new_width, new_height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    # ...unless a side stopped at 1 pixel (a 1 x 5,000,000 strip): then the other one gives.
    if new_width * new_height > limit:
        if new_width == 1:
            new_height = max(1, math.floor(limit))
        else:
            new_width = max(1, math.floor(limit))
    return new_width, new_height


def downscale_frame(frame: np.ndarray, max_megapixels: float) -> np.ndarray:
    """Shrink a uint8 frame (Pillow LANCZOS) to `downscaled_size`; returns `frame` itself when
    it already fits."""
    height, width = frame.shape[:2]
    size = downscaled_size(width, height, max_megapixels)
    if size == (width, height):
        return frame
    resized = np.asarray(_to_pil(frame).resize(size, Image.Resampling.LANCZOS))
    return resized.reshape(size[1], size[0], -1) if frame.ndim == 3 else resized


def _to_pil(frame: np.ndarray) -> Image.Image:
    """A Pillow view of a uint8 frame; Pillow wants single-channel frames as 2-D arrays."""
    return Image.fromarray(frame[..., 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame)
