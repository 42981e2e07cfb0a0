"""Result image bytes -> pixels, with the size limits that stop decompression bombs, and the
identity of a frame's pixels that matches a result to a reference (a chained edit).

Torch-free, so the pipeline (and the CLI) can check every result before it is cached.
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DecodeError

# Largest result we decode; fal's Kontext outputs are ~1-4 MP, so this only stops bombs.
DEFAULT_MAX_DECODED_PIXELS = 64_000_000
# Formats fal returns results in; anything else is refused rather than guessed at.
RESULT_FORMATS = ("PNG", "JPEG", "WEBP")
_ORIENTATION = 0x0112  # the EXIF tag ImageOps.exif_transpose applies


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_DECODED_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/WebP bytes to a uint8 HxWx3 RGB array, EXIF orientation applied and alpha
    dropped. Images above `max_pixels` are refused from the header, before decoding. Staying in
    uint8 until `stack_results` keeps peak memory near the final tensor's size."""
    try:
        with Image.open(io.BytesIO(data), formats=RESULT_FORMATS) as image:
            width, height = image.size
            # Below Pillow's own bomb threshold, so its (thread-unsafe) warning never fires.
            if width * height > min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels):
                raise DecodeError(f"The result image is too large to decode ({width}x{height} = "
                                  f"{width * height:,} pixels; the limit is {max_pixels:,})")
            ImageOps.exif_transpose(image, in_place=True)  # loads the pixels once
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"The result image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise DecodeError(f"The result image could not be decoded: the {len(data):,} bytes are not a "
                          f"PNG/JPEG/WebP image (they start {bytes(data[:16])!r})") from exc
    except Exception as exc:  # a damaged file: Pillow raises OSError, ValueError, SyntaxError...
        raise DecodeError(f"The result image could not be decoded: the PNG/JPEG/WebP data is damaged "
                          f"({exc})") from exc


def frame_key(frame: np.ndarray) -> str:
    """A sha256 of a frame's shape, dtype and raw pixel bytes: the identity the upload cache, the
    result cache and chained edits know a frame by. Results and references both use this one
    function, so a result fed back as a reference is recognised pixel for pixel."""
    digest = hashlib.sha256(f"{frame.shape}|{frame.dtype.str}|".encode())
    digest.update(memoryview(np.ascontiguousarray(frame)).cast("B"))
    return digest.hexdigest()


def served_identity(data: bytes, decoded: Any) -> str | None:
    """The identity of a result's pixels when fal, fetching the same file, reads exactly those
    pixels: a uint8 RGB frame decoded from an RGB or gray file that needed no EXIF rotation.
    None otherwise (alpha dropped, a palette, a rotation: what fal reads would differ)."""
    if not isinstance(decoded, np.ndarray) or decoded.dtype != np.uint8 or decoded.ndim != 3:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=RESULT_FORMATS) as image:  # the header only
            if image.mode not in ("RGB", "L") or image.getexif().get(_ORIENTATION, 1) != 1:
                return None
    except Exception:  # noqa: BLE001 - it decoded once; anything odd now just means "not chained"
        return None
    return frame_key(decoded)
