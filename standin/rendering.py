"""Deterministic stand-in outputs: the references side by side, lightly tinted per variant.

A test can tell from the pixels that every reference arrived, in order (solid-colour references
give solid bands), while the seed/index tint keeps the num_images variants distinct.
"""
from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass

from PIL import Image, ImageOps

TARGET_PIXELS = 1024 * 1024
SIZE_STEP = 16
MAX_TINT = 0.15  # keep band colours recognisable
# Our widest/tallest documented aspect ratios; a stray reference shape is clamped into this range.
MIN_RATIO, MAX_RATIO = 9 / 21, 21 / 9

_NSFW_TAG = re.compile(r"\[nsfw(?::([0-9,\s]*))?\]", re.IGNORECASE)
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    flagged: bool


def canvas_size(aspect_ratio: str | None, first_reference: tuple[int, int]) -> tuple[int, int]:
    """~1 MP, both sides multiples of 16, shaped like the aspect ratio (or the first reference)."""
    if aspect_ratio:
        w_part, h_part = (int(part) for part in aspect_ratio.split(":"))
        ratio = w_part / h_part
    else:
        ratio = first_reference[0] / max(1, first_reference[1])
    ratio = min(MAX_RATIO, max(MIN_RATIO, ratio))
    width = _round_step(math.sqrt(TARGET_PIXELS * ratio))
    height = _round_step(math.sqrt(TARGET_PIXELS / ratio))
    return width, height


def _round_step(value: float) -> int:
    return max(SIZE_STEP, int(round(value / SIZE_STEP)) * SIZE_STEP)


def nsfw_indices(prompt: str, count: int) -> set[int]:
    """Images the simulated safety checker flags: `[nsfw]` = all, `[nsfw:0,2]` = those indices."""
    flagged: set[int] = set()
    for match in _NSFW_TAG.finditer(prompt):
        listed = match.group(1)
        if listed is None or not listed.strip():
            flagged.update(range(count))
        else:
            flagged.update(int(p) for p in listed.split(",") if p.strip().isdigit())
    return {index for index in flagged if 0 <= index < count}


def compose_strip(references: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    """Equal-width vertical bands, one per reference in order, each filled cover-style."""
    width, height = size
    canvas = Image.new("RGB", size)
    count = len(references)
    for index, reference in enumerate(references):
        left = index * width // count
        right = (index + 1) * width // count
        band = ImageOps.fit(reference, (max(1, right - left), height), Image.Resampling.BILINEAR)
        canvas.paste(band, (left, 0))
    return canvas


def tint(image: Image.Image, seed: int, index: int) -> Image.Image:
    """Blend a colour derived from (seed, index) over the image at 5-15 %."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    colour = (digest[0], digest[1], digest[2])
    alpha = 0.05 + (digest[3] / 255) * (MAX_TINT - 0.05)
    return Image.blend(image, Image.new("RGB", image.size, colour), alpha)


def encode(image: Image.Image, output_format: str) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=1)  # fast: rendering sits on the job's clock
    else:
        image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue(), CONTENT_TYPES[output_format]


def render_outputs(references: list[Image.Image], prompt: str, seed: int, num_images: int,
                   output_format: str, aspect_ratio: str | None,
                   size: tuple[int, int] | None = None,
                   flag_nsfw: bool = True) -> list[RenderedImage]:
    """`size` (when given) wins over the aspect ratio; `flag_nsfw=False` never blanks an image
    (endpoints without has_nsfw_concepts report a flagged result otherwise)."""
    size = size or canvas_size(aspect_ratio, references[0].size)
    strip = compose_strip(references, size)
    flagged = nsfw_indices(prompt, num_images) if flag_nsfw else set()
    outputs = []
    for index in range(num_images):
        is_flagged = index in flagged
        image = Image.new("RGB", size) if is_flagged else tint(strip, seed, index)
        data, content_type = encode(image, output_format)
        outputs.append(RenderedImage(data, content_type, size[0], size[1], is_flagged))
    return outputs
