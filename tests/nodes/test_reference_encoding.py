"""Specification of how each reference is sent: photos compact (JPEG), graphics, alpha and
forced-lossless references pixel-exact (PNG). Real tensors in, real bytes decoded back."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, JpegImagePlugin

from fal_kontext.kontext.errors import InvalidInputError
from fal_kontext.kontext import models as m
from fal_kontext.kontext.reference_encoding import (encode_reference, jpeg_quantisation_tables,
                                                     looks_like_graphic)
from fal_kontext.nodes.references import collect_references


def photo_tensor(side: int = 512, noise_levels: float = 1.5, seed: int = 3) -> torch.Tensor:
    """[1,H,W,3]: smooth gradients and waves plus sensor-like noise, like a downscaled photo."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, side).view(side, 1)
    x = torch.linspace(0, 1, side).view(1, side)
    channels = [0.5 + 0.3 * torch.sin(6.3 * (k + 1) * x + k) * torch.cos(4.1 * (k + 2) * y)
                + 0.1 * torch.sin(40.0 * (x + y) + k) for k in range(3)]
    image = torch.stack(channels, dim=-1)
    image += torch.randn(side, side, 3, generator=generator) * (noise_levels / 255)
    return image.clamp(0, 1).unsqueeze(0)


def graphic_image(mode: str = "RGB", side: int = 512) -> Image.Image:
    """Flat fills, a hard-edged shape and a line: what a logo or diagram looks like."""
    image = Image.new(mode, (side, side), (245, 245, 240, 255)[:len(mode)])
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 300, 200), fill=(20, 90, 200, 255)[:len(mode)])
    draw.ellipse((200, 220, 460, 480), fill=(220, 40, 30, 180)[:len(mode)])
    draw.line((0, side - 1, side - 1, 0), fill=(0, 0, 0, 255)[:len(mode)], width=4)
    return image


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).astype(np.float32) / 255).unsqueeze(0)


def sent(tensor: torch.Tensor, encoding: str = "auto") -> tuple[bytes, str]:
    (reference,) = collect_references({"images": tensor}, ("images",), 0.0, encoding)
    return reference.encode()


def decoded(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, np.asarray(image)


def uint8(tensor: torch.Tensor) -> np.ndarray:
    return (tensor[0] * 255).round().to(torch.uint8).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def pillow_default_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_photo_goes_as_jpeg_within_40_db_at_a_fraction_of_a_png():
    tensor = photo_tensor()
    data, content_type = sent(tensor)
    image_format, pixels = decoded(data)
    assert (content_type, image_format) == ("image/jpeg", "JPEG")
    assert pixels.shape == (512, 512, 3)
    assert psnr(pixels, uint8(tensor)) >= 40
    assert len(data) <= 0.35 * len(pillow_default_png(Image.fromarray(uint8(tensor))))


@pytest.mark.parametrize("noise_levels", [0.0, 5.0, 20.0])
def test_every_photo_comes_back_within_the_fidelity_floor_however_noisy(noise_levels):
    # The flat quantisation step bounds the error whatever the content: gradients, heavy sensor
    # noise or grain (the quality scale's tables lose ~5 dB on noise).
    tensor = photo_tensor(noise_levels=noise_levels)
    data, content_type = sent(tensor)
    assert content_type == "image/jpeg"
    assert psnr(decoded(data)[1], uint8(tensor)) >= m.REFERENCE_MIN_PSNR_DB


def test_pure_noise_too_big_for_pillows_optimise_buffer_still_goes_as_jpeg_within_the_floor():
    # Optimised JPEG of 1 MP of random pixels needs more than Pillow's 2 bytes a pixel.
    frame = np.random.default_rng(5).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    encoded = encode_reference(frame)
    assert (encoded.content_type, encoded.kind) == ("image/jpeg", "photo")
    assert len(encoded.data) > 2 * 1024 * 1024
    assert psnr(decoded(encoded.data)[1], frame) >= m.REFERENCE_MIN_PSNR_DB


def test_photo_jpeg_rounds_every_coefficient_to_the_flat_step():
    data, _ = sent(photo_tensor(side=64))
    with Image.open(io.BytesIO(data)) as image:
        luma, chroma = (list(table) for table in image.quantization.values())
    fine = {m.REFERENCE_JPEG_FINE_STEP: 6, m.REFERENCE_JPEG_STEP: 58}  # 1 + 2 + 3 lowest
    for table in (luma, chroma):
        assert {step: table.count(step) for step in set(table)} == fine
        assert table[0] == table[1] == table[8] == m.REFERENCE_JPEG_FINE_STEP  # DC and neighbours


def test_photo_jpeg_keeps_full_colour_resolution():
    data, _ = sent(photo_tensor(side=64))
    with Image.open(io.BytesIO(data)) as image:
        # 4:4:4 (Pillow's code 0): colour sampled at full resolution, no chroma subsampling.
        assert JpegImagePlugin.get_sampling(image) == 0


def test_flat_graphic_goes_lossless_and_no_bigger_than_pillows_default_png():
    image = graphic_image()
    data, content_type = sent(as_tensor(image))
    image_format, pixels = decoded(data)
    assert (content_type, image_format) == ("image/png", "PNG")
    np.testing.assert_array_equal(pixels, np.asarray(image))
    assert len(data) <= len(pillow_default_png(image))


def test_anti_aliased_drawing_counts_as_a_graphic():
    # Drawn at 2x and scaled down, as the shipped samples are: a few hundred colours.
    big = graphic_image(side=1024)
    assert looks_like_graphic(np.asarray(big.resize((512, 512), Image.Resampling.LANCZOS)))


def test_rgba_goes_lossless_with_its_alpha():
    image = graphic_image("RGBA")
    tensor = as_tensor(image)
    data, content_type = sent(tensor)
    image_format, pixels = decoded(data)
    assert (content_type, image_format) == ("image/png", "PNG")
    assert pixels.shape[-1] == 4
    np.testing.assert_array_equal(pixels, np.asarray(image))


def test_rgba_photo_goes_lossless_too():
    rgb = uint8(photo_tensor(side=128))
    rgba = np.concatenate([rgb, np.full((128, 128, 1), 200, np.uint8)], axis=-1)
    encoded = encode_reference(rgba)
    assert (encoded.content_type, encoded.kind) == ("image/png", "alpha")
    np.testing.assert_array_equal(decoded(encoded.data)[1], rgba)


def test_gray_frames_go_lossless():
    gray = uint8(photo_tensor(side=128))[..., :1]
    encoded = encode_reference(gray)
    assert encoded.content_type == "image/png"
    np.testing.assert_array_equal(decoded(encoded.data)[1], gray[..., 0])


def test_forced_lossless_sends_photos_bit_exact():
    tensor = photo_tensor()
    data, content_type = sent(tensor, "lossless")
    image_format, pixels = decoded(data)
    assert (content_type, image_format) == ("image/png", "PNG")
    np.testing.assert_array_equal(pixels, uint8(tensor))


def test_forced_lossless_and_auto_are_different_uploads():
    tensor = photo_tensor(side=64)
    (auto,) = collect_references({"images": tensor}, ("images",), 1.0, "auto")
    (lossless,) = collect_references({"images": tensor}, ("images",), 1.0, "lossless")
    assert auto.key != lossless.key and auto.result_key != lossless.result_key


@pytest.mark.parametrize("constant", ["REFERENCE_JPEG_STEP", "REFERENCE_JPEG_FINE_STEP",
                                      "REFERENCE_JPEG_FINE_BAND"])
def test_the_upload_key_names_the_rule_so_a_changed_step_is_a_new_upload(monkeypatch, constant):
    tensor = photo_tensor(side=64)
    (before,) = collect_references({"images": tensor}, ("images",), 1.0)
    monkeypatch.setattr(m, constant, getattr(m, constant) + 1)
    (after,) = collect_references({"images": tensor}, ("images",), 1.0)
    assert before.key != after.key
    assert before.result_key == after.result_key  # a paid result is still found


def test_unknown_encoding_is_refused_naming_the_input():
    with pytest.raises(InvalidInputError, match="reference_encoding"):
        collect_references({"images": photo_tensor(side=16)}, ("images",), 1.0, "webp")


def test_large_references_are_downscaled_to_the_default_before_encoding():
    tensor = photo_tensor(side=1200, noise_levels=0)  # 1.44 MP
    (reference,) = collect_references({"images": tensor}, ("images",),
                                      m.DEFAULT_MAX_REFERENCE_MEGAPIXELS)
    _, pixels = decoded(reference.encode()[0])
    height, width = pixels.shape[:2]
    assert height == width and height * width <= m.DEFAULT_MAX_REFERENCE_MEGAPIXELS * 1e6
    assert height * width >= 0.99 * m.DEFAULT_MAX_REFERENCE_MEGAPIXELS * 1e6


def test_rgba_graphic_is_no_bigger_than_pillows_default_png():
    image = graphic_image("RGBA")
    data, _ = sent(as_tensor(image))
    assert len(data) <= len(pillow_default_png(image))


@pytest.mark.parametrize("kind", ["photo", "graphic"])
def test_encoding_through_a_file_gives_the_same_bytes_as_pillow_into_memory(kind, monkeypatch):
    # The encoders write through a file descriptor (so Pillow releases the GIL); the bytes must
    # be exactly Pillow's, with memfd and with the temporary-file fallback.
    frame = uint8(photo_tensor(side=96)) if kind == "photo" else np.asarray(graphic_image(side=96))
    encoded = encode_reference(frame)
    buffer = io.BytesIO()
    if kind == "photo":
        Image.fromarray(frame).save(buffer, "JPEG", qtables=jpeg_quantisation_tables(),
                                    subsampling=m.REFERENCE_JPEG_SUBSAMPLING, optimize=True)
    else:
        Image.fromarray(frame).save(buffer, "PNG")
    assert encoded.data == buffer.getvalue()
    monkeypatch.delattr("os.memfd_create", raising=False)
    assert encode_reference(frame).data == buffer.getvalue()
