"""IMAGE node inputs -> pipeline References (validated frames with lazy PNG encoding)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..kontext.pipeline import Reference
from .image_tensors import downscale_frame, encode_png, frame_key, reference_frames

PNG = "image/png"


def collect_references(inputs: Mapping[str, Any], input_names: Sequence[str],
                       max_megapixels: float) -> list[Reference]:
    """Every frame of every connected reference input, in socket order then batch order."""
    references: list[Reference] = []
    for name in input_names:
        image = inputs.get(name)
        if image is None:
            continue
        frames = reference_frames(name, image)
        for index, frame in enumerate(frames):
            label = f"{name}[{index}]" if len(frames) > 1 else name
            references.append(_reference(label, frame, max_megapixels))
    return references


def count_frames(inputs: Mapping[str, Any], input_names: Sequence[str]) -> int:
    """How many references the inputs hold, without converting anything."""
    total = 0
    for name in input_names:
        image = inputs.get(name)
        if image is None:
            continue
        shape = getattr(image, "shape", None)
        # Anything else counts as one, so reference_frames later names what is wrong with it.
        total += int(shape[0]) if shape is not None and len(shape) == 4 else 1
    return total


def _reference(label: str, frame: np.ndarray, max_megapixels: float) -> Reference:
    # The key names the pixels and how they are sent, so a re-run skips encoding and upload.
    key = f"{frame_key(frame)}:{max_megapixels:g}mp:png"

    def encode() -> tuple[bytes, str]:
        return encode_png(downscale_frame(frame, max_megapixels)), PNG

    return Reference(label=label, key=key, encode=encode)
