"""IMAGE node inputs -> pipeline References (validated frames with lazy encoding: JPEG for
photos, PNG for graphics, alpha and forced lossless; see kontext/reference_encoding.py)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..kontext.errors import InvalidInputError
from ..kontext import models as m
from ..kontext.pipeline import Reference
from ..kontext.reference_encoding import downscaled_size, reference_keys
from .image_tensors import downscale_frame, encode_reference, frame_key, reference_frames


def collect_references(inputs: Mapping[str, Any], input_names: Sequence[str],
                       max_megapixels: float,
                       encoding: str = m.REFERENCE_ENCODING_DEFAULT) -> list[Reference]:
    """Every frame of every connected reference input, in socket order then batch order;
    `encoding` is `auto` (per-image rule) or `lossless`."""
    if encoding not in m.REFERENCE_ENCODINGS:
        raise InvalidInputError("reference_encoding", f"must be one of "
                                                      f"{', '.join(m.REFERENCE_ENCODINGS)}; got {encoding!r}")
    references: list[Reference] = []
    for name in input_names:
        image = inputs.get(name)
        if image is None:
            continue
        frames = reference_frames(name, image)
        for index, frame in enumerate(frames):
            label = f"{name}[{index}]" if len(frames) > 1 else name
            references.append(_reference(label, frame, max_megapixels, encoding))
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


def sent_reference_sizes(inputs: Mapping[str, Any], input_names: Sequence[str],
                         max_megapixels: float) -> list[tuple[int, int]]:
    """(width, height) of every reference as it will be sent (after the downscale to
    `max_megapixels`), in the order `collect_references` gives, read from the tensors' shapes
    without converting anything. An input that is not an IMAGE counts as one 0x0 reference;
    `collect_references` names what is wrong with it."""
    sizes: list[tuple[int, int]] = []
    for name in input_names:
        image = inputs.get(name)
        if image is None:
            continue
        shape = tuple(getattr(image, "shape", ()))
        if len(shape) == 3:
            shape = (1, *shape)
        if len(shape) != 4:
            sizes.append((0, 0))
            continue
        frames, height, width = int(shape[0]), int(shape[1]), int(shape[2])
        sizes.extend([downscaled_size(width, height, max_megapixels)] * frames)
    return sizes


def _reference(label: str, frame: np.ndarray, max_megapixels: float, encoding: str) -> Reference:
    # The key lets a re-run skip encoding and upload, and never reuses an upload made by another
    # rule; the identity finds a paid result again whatever the rule (see Reference).
    content = frame_key(frame)
    key, identity = reference_keys(content, max_megapixels, encoding)
    # Sent at its own size, the frame may go as the URL of a result fal serves with exactly
    # these pixels: that beats either encoding (the same file, not a re-encode of its pixels).
    height, width = frame.shape[:2]
    pixels = content if downscaled_size(width, height, max_megapixels) == (width, height) else ""

    def encode() -> tuple[bytes, str]:
        encoded = encode_reference(downscale_frame(frame, max_megapixels), encoding)
        return encoded.data, encoded.content_type

    return Reference(label=label, key=key, encode=encode, identity=identity, pixels=pixels)
