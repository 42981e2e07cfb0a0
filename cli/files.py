"""Reference files in, result files (plus a JSON sidecar with `info`) out."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..kontext.errors import InvalidInputError
from ..kontext import models as m
from ..kontext.pipeline import EditResult, Reference
from ..kontext.reference_encoding import (downscale_frame, downscaled_size, encode_reference,
                                          reference_keys)

_MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXTENSION_BY_MIME = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 degrees: width and height swap


def load_reference(path: Path, label: str, encoding: str = m.REFERENCE_ENCODING_DEFAULT,
                   max_megapixels: float = m.DEFAULT_MAX_REFERENCE_MEGAPIXELS) -> Reference:
    """A reference from an image file (see `load_reference_and_size`)."""
    return load_reference_and_size(path, label, encoding, max_megapixels)[0]


def load_reference_and_size(path: Path, label: str, encoding: str = m.REFERENCE_ENCODING_DEFAULT,
                            max_megapixels: float = m.DEFAULT_MAX_REFERENCE_MEGAPIXELS
                            ) -> tuple[Reference, tuple[int, int]]:
    """A reference from an image file, and its (width, height) as sent (what FLUX.2 bills).

    A file that already fits `max_megapixels` goes as it is when re-encoding could only lose (a JPEG or WebP under `auto`; any file under `lossless`);
    anything else is decoded, downscaled and encoded by the nodes' rule
    (kontext/reference_encoding.py), e.g. a PNG photo goes as JPEG under `auto`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInputError(label, f"cannot read {path}: {error.strerror}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, (width, height) = image.format, image.size
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSED_ORIENTATIONS:
                width, height = height, width  # as displayed (and as decoded for re-encoding)
    except (UnidentifiedImageError, OSError):
        image_format, width, height = None, 0, 0
    content_type = _MIME_BY_FORMAT.get(image_format or "")
    if content_type is None:
        raise InvalidInputError(label, f"{path} is not a PNG, JPEG or WebP image")
    digest = hashlib.sha256(data).hexdigest()
    label = f"{label} ({path.name})"
    sent_size = downscaled_size(width, height, max_megapixels)
    fits = sent_size == (width, height)
    if fits and (encoding == "lossless" or content_type != "image/png"):
        return Reference(label=label, key=digest, encode=lambda: (data, content_type)), sent_size

    def encode() -> tuple[bytes, str]:
        frame = downscale_frame(_decoded_frame(data), max_megapixels)
        encoded = encode_reference(frame, encoding)
        return encoded.data, encoded.content_type

    key, identity = reference_keys(digest, max_megapixels, encoding)
    return Reference(label=label, key=key, encode=encode, identity=identity), sent_size


def _decoded_frame(data: bytes) -> np.ndarray:
    """The file's pixels as a uint8 frame, EXIF orientation applied, alpha kept."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode not in ("L", "LA", "RGB", "RGBA"):
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        return np.asarray(image)


def write_results(result: EditResult, output_dir: Path, prefix: str = "kontext") -> list[Path]:
    """Write each image and one `<name>.json` sidecar holding `info`; returns the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}_{(result.info.get('request_id') or 'result')[:8]}_seed{result.seed}"
    paths = []
    for position, image in enumerate(result.images):
        path = output_dir / f"{stem}_{position}{_EXTENSION_BY_MIME.get(image.content_type, '.img')}"
        path.write_bytes(image.data)
        paths.append(path)
    sidecar = output_dir / f"{stem}.json"
    sidecar.write_text(json.dumps({**result.info, "files": [p.name for p in paths]}, indent=2))
    return [*paths, sidecar]
