"""The CLI sends reference files by the nodes' rule: compact files as they are, PNG photos as
JPEG, graphics and `--reference-encoding lossless` pixel-exact."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fal_kontext.cli.files import load_reference
from fal_kontext.cli.main import build_parser


def noisy_photo(size: int = 256) -> Image.Image:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.4 * np.sin(7 * x + k) * np.cos(5 * y) for k in range(3)], axis=-1)
    return Image.fromarray(np.clip(base * 255 + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8))


def saved(image: Image.Image, path, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_a_jpeg_file_goes_as_it_is(tmp_path):
    data = saved(noisy_photo(), tmp_path / "a.jpg", "JPEG", quality=80)
    assert load_reference(tmp_path / "a.jpg", "REF 1").encode() == (data, "image/jpeg")


def test_a_png_photo_goes_as_jpeg_unless_lossless_is_asked(tmp_path):
    data = saved(noisy_photo(), tmp_path / "a.png", "PNG")
    auto_bytes, auto_type = load_reference(tmp_path / "a.png", "REF 1").encode()
    assert auto_type == "image/jpeg" and len(auto_bytes) < len(data)
    assert load_reference(tmp_path / "a.png", "REF 1", "lossless").encode() == (data, "image/png")


def test_a_too_large_file_is_downscaled_and_stays_lossless_when_asked(tmp_path):
    image = noisy_photo(400)  # 0.16 MP
    saved(image, tmp_path / "big.png", "PNG")
    data, content_type = load_reference(tmp_path / "big.png", "REF 1", "lossless", 0.04).encode()
    with Image.open(io.BytesIO(data)) as sent:
        assert content_type == "image/png" and sent.width * sent.height <= 40_000


def test_the_flags_match_the_node_widget():
    args = build_parser().parse_args(["edit", "--prompt", "p", "a.png",
                                      "--reference-encoding", "lossless",
                                      "--max-reference-megapixels", "2"])
    assert (args.reference_encoding, args.max_reference_megapixels) == ("lossless", 2.0)
