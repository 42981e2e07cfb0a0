"""Result bytes -> pixels (jobs/result_images.py): orientation, formats, bomb limits."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fal_kontext.kontext.errors import DecodeError
from fal_kontext.jobs.result_images import decode_image, frame_key, served_identity


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched to claim another size (CRC fixed so it parses)."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1))))
    ihdr_start = 8 + 4  # signature, then the chunk length
    body = b"IHDR" + struct.pack(">II", width, height) + bytes(data[ihdr_start + 12:ihdr_start + 17])
    data[ihdr_start:ihdr_start + 17] = body
    data[ihdr_start + 17:ihdr_start + 21] = struct.pack(">I", zlib.crc32(body))
    return bytes(data)


def test_png_decodes_to_uint8_rgb():
    pixels = np.random.default_rng(2).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    decoded = decode_image(png_bytes(Image.fromarray(pixels)))
    assert decoded.dtype == np.uint8 and decoded.shape == (5, 6, 3)
    np.testing.assert_array_equal(decoded, pixels)


def test_rgba_result_drops_alpha():
    decoded = decode_image(png_bytes(Image.new("RGBA", (3, 2), (10, 20, 30, 0))))
    assert decoded.shape == (2, 3, 3)
    np.testing.assert_array_equal(decoded[0, 0], [10, 20, 30])


def test_grayscale_result_becomes_rgb():
    decoded = decode_image(png_bytes(Image.new("L", (3, 2), 200)))
    assert decoded.shape == (2, 3, 3)
    np.testing.assert_array_equal(decoded, 200)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_results_decode(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 40, 40)).save(buffer, format=fmt, quality=95)
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == (8, 16, 3)
    np.testing.assert_allclose(decoded[4, 8], [200, 40, 40], atol=10)


def test_exif_orientation_is_applied():
    # Left half red, right half blue; orientation 6 means "rotate 90 degrees clockwise to view".
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :16] = (255, 0, 0)
    pixels[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())

    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == (32, 16, 3)
    np.testing.assert_allclose(decoded[4, 8], [255, 0, 0], atol=26)   # top is red
    np.testing.assert_allclose(decoded[28, 8], [0, 0, 255], atol=26)  # bottom is blue


def test_image_above_max_pixels_is_refused_from_its_header():
    # The IDAT holds one pixel, so any attempt to decode 10000x1000 would fail differently.
    with pytest.raises(DecodeError, match=r"too large.*10000x1000.*limit is 1,000,000"):
        decode_image(png_claiming_size(10_000, 1_000), max_pixels=1_000_000)


def test_decompression_bomb_is_a_decode_error():
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(DecodeError, match="too large"):
        decode_image(png_claiming_size(100_000, 100_000), max_pixels=10**12)
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_image_within_max_pixels_decodes():
    data = png_bytes(Image.new("RGB", (100, 100)))
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)


@pytest.mark.parametrize("data", [
    b"",
    b"this is not an image at all",
    b'{"detail": "Internal Server Error"}',
    png_bytes(Image.new("RGB", (64, 64)))[:60],  # truncated
], ids=["empty", "text", "json", "truncated_png"])
def test_unreadable_bytes_are_a_decode_error(data):
    with pytest.raises(DecodeError, match="could not be decoded"):
        decode_image(data)


def test_formats_other_than_png_jpeg_webp_are_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="GIF")
    with pytest.raises(DecodeError, match="PNG/JPEG/WebP"):
        decode_image(buffer.getvalue())


# --- the identity a chained edit matches a result by ---------------------------------------------

def jpeg_bytes(image: Image.Image, exif: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def test_a_plain_rgb_result_is_known_by_the_identity_of_its_decoded_pixels():
    pixels = np.random.default_rng(3).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    data = jpeg_bytes(Image.fromarray(pixels))
    decoded = decode_image(data)
    assert served_identity(data, decoded) == frame_key(decoded) != frame_key(pixels)


def test_a_gray_result_decodes_to_the_same_pixels_fal_reads():
    data = png_bytes(Image.new("L", (4, 4), 77))
    assert served_identity(data, decode_image(data)) is not None


@pytest.mark.parametrize("image, why", [
    (Image.new("RGBA", (4, 4), (10, 20, 30, 40)), "alpha dropped: fal reads another image"),
    (Image.new("P", (4, 4)), "a palette"),
])
def test_a_result_fal_would_read_differently_has_no_identity(image, why):
    data = png_bytes(image)
    assert served_identity(data, decode_image(data)) is None, why


def test_a_result_that_needed_an_exif_rotation_has_no_identity():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    data = jpeg_bytes(Image.new("RGB", (8, 4), (200, 10, 10)), exif.tobytes())
    decoded = decode_image(data)
    assert decoded.shape == (8, 4, 3), "decode applied the rotation"
    assert served_identity(data, decoded) is None


def test_anything_but_uint8_pixels_has_no_identity():
    data = png_bytes(Image.new("RGB", (2, 2)))
    assert served_identity(data, decode_image(data).astype(np.float32)) is None
    assert served_identity(data, "not pixels") is None
