"""Specification of the IMAGE tensor <-> image bytes conversions in nodes/image_tensors.py."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from fal_kontext.kontext.errors import InvalidInputError
from fal_kontext.jobs.result_images import decode_image
from fal_kontext.nodes.image_tensors import (
    downscale_frame,
    encode_png,
    frame_key,
    reference_frames,
    stack_results,
)

# Small uint8 batches [B,H,W,C] with every supported channel count.
uint8_batches = st.tuples(
    st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)
).flatmap(lambda shape: arrays(np.uint8, shape))


def as_image_tensor(pixels: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.from_numpy(pixels).to(torch.float64) / 255).to(dtype)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decoded_with_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)



# --- reference_frames: round trips ----------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(uint8_batches)
def test_uint8_representable_tensor_round_trips_through_png_exactly(pixels):
    frames = reference_frames("image_1", as_image_tensor(pixels))
    assert len(frames) == pixels.shape[0]
    for frame, expected in zip(frames, pixels):
        assert frame.dtype == np.uint8 and frame.shape == expected.shape
        decoded = decoded_with_pillow(encode_png(frame))
        np.testing.assert_array_equal(decoded.reshape(expected.shape), expected)


@settings(max_examples=30, deadline=None)
@given(uint8_batches, st.sampled_from([torch.float16, torch.float64]))
def test_half_and_double_precision_inputs_convert_exactly(pixels, dtype):
    frames = reference_frames("image_1", as_image_tensor(pixels, dtype))
    np.testing.assert_array_equal(np.stack(frames), pixels)


def test_bfloat16_input_is_accepted_within_one_level():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    (frame,) = reference_frames("image_1", as_image_tensor(pixels, torch.bfloat16))
    assert np.abs(frame.astype(int) - pixels[0]).max() <= 1


def test_frames_come_out_in_batch_order():
    batch = torch.stack([torch.full((2, 3, 3), level / 255) for level in (10, 20, 30)])
    assert [int(frame[0, 0, 0]) for frame in reference_frames("image_1", batch)] == [10, 20, 30]


def test_unbatched_hwc_tensor_is_one_frame():
    frames = reference_frames("image_1", torch.full((4, 5, 3), 0.5))
    assert len(frames) == 1 and frames[0].shape == (4, 5, 3)
    assert frames[0][0, 0, 0] == 128  # rounded, not truncated


def test_out_of_range_values_are_clamped():
    image = torch.tensor([[[[-0.5, 1.2, 1.0000001], [-1e-6, 0.5, 7.0]]]])
    (frame,) = reference_frames("image_1", image)
    np.testing.assert_array_equal(frame, [[[0, 255, 255], [0, 128, 255]]])


def test_four_channel_reference_keeps_alpha():
    image = torch.zeros(1, 2, 2, 4)
    image[..., 0] = 1.0
    image[..., 3] = 0.5
    (frame,) = reference_frames("image_1", image)
    with Image.open(io.BytesIO(encode_png(frame))) as decoded:
        assert decoded.mode == "RGBA"
        assert decoded.getpixel((0, 0)) == (255, 0, 0, 128)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_png_mode_follows_channel_count(channels, mode):
    (frame,) = reference_frames("image_1", torch.rand(1, 3, 4, channels))
    with Image.open(io.BytesIO(encode_png(frame))) as decoded:
        assert decoded.mode == mode and decoded.size == (4, 3)


def test_non_contiguous_tensor_gives_contiguous_frames():
    image = torch.rand(2, 3, 5, 4).permute(0, 2, 1, 3)  # [2,5,3,4] view with odd strides
    frames = reference_frames("image_1", image)
    assert all(frame.flags.c_contiguous for frame in frames)
    np.testing.assert_array_equal(frames[1], (image[1] * 255).round().to(torch.uint8).numpy())


# --- reference_frames: refusals name the input -----------------------------------------------

@pytest.mark.parametrize(("image", "fragment"), [
    (np.zeros((1, 4, 4, 3), np.float32), "is not an IMAGE (got ndarray)"),
    (None, "is not an IMAGE (got NoneType)"),
    (torch.zeros(4, 4), "2 dimensions"),
    (torch.zeros(1, 1, 4, 4, 3), "5 dimensions"),
    (torch.zeros(1, 4, 4, 5), "5 channels"),
    (torch.zeros(1, 3, 8, 8), "channels-first"),
    (torch.zeros(0, 4, 4, 3), "empty batch"),
    (torch.zeros(1, 0, 4, 3), "zero size"),
    (torch.zeros(1, 4, 0, 3), "zero size"),
    (torch.zeros(1, 4, 4, 3, dtype=torch.uint8), "dtype torch.uint8"),
])
def test_invalid_images_are_refused_with_an_actionable_message(image, fragment):
    with pytest.raises(InvalidInputError) as caught:
        reference_frames("image_2", image)
    assert caught.value.input_name == "image_2"
    assert str(caught.value).startswith("image_2 ") and fragment in str(caught.value)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
def test_nan_names_the_input(bad_value):
    image = torch.rand(2, 4, 4, 3, dtype=torch.float64)
    image[1, 2, 3, 0] = bad_value
    with pytest.raises(InvalidInputError, match="^image_3 contains NaN or infinite.*check the node"):
        reference_frames("image_3", image)


# --- frame_key ------------------------------------------------------------------------------

def test_frame_key_is_equal_for_equal_pixels():
    pixels = np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    strided = np.asfortranarray(pixels)
    assert frame_key(pixels) == frame_key(pixels.copy()) == frame_key(strided)
    assert len(frame_key(pixels)) == 64


def test_frame_key_changes_when_one_pixel_changes():
    pixels = np.zeros((6, 7, 3), np.uint8)
    changed = pixels.copy()
    changed[5, 6, 2] = 1
    assert frame_key(pixels) != frame_key(changed)


def test_frame_key_distinguishes_same_bytes_in_another_shape():
    pixels = np.zeros((6, 7, 3), np.uint8)
    assert frame_key(pixels) != frame_key(pixels.reshape(7, 6, 3))


# --- downscale_frame ------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [0, -1, 0.08, 10.0])
def test_frame_within_limit_or_unlimited_is_returned_unchanged(limit):
    frame = np.zeros((200, 400, 3), np.uint8)  # 0.08 MP
    assert downscale_frame(frame, limit) is frame


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_large_frame_is_downscaled_to_fit_keeping_aspect(channels):
    frame = np.full((200, 400, channels), 77, np.uint8)
    if channels in (2, 4):
        frame[..., -1] = 255  # opaque, so Pillow's premultiplied-alpha resize is exact
    small = downscale_frame(frame, 0.02)
    height, width = small.shape[:2]
    assert small.shape[2] == channels and small.dtype == np.uint8
    assert width * height <= 20_000 and width * height > 19_000
    assert abs(width / height - 2) < 0.02
    np.testing.assert_array_equal(small, frame[:1, :1].repeat(height, 0).repeat(width, 1))


# --- stack_results --------------------------------------------------------------------------

def test_same_size_frames_stack_as_floats_in_0_to_1():
    frames = [np.random.default_rng(seed).integers(0, 256, (4, 5, 3), dtype=np.uint8) for seed in (1, 2)]
    batch = stack_results(frames)
    assert batch.shape == (2, 4, 5, 3) and batch.dtype == torch.float32 and batch.device.type == "cpu"
    np.testing.assert_allclose(batch.numpy(), np.stack(frames) / 255, atol=1e-7)


def test_mismatched_sizes_are_resized_to_the_first():
    first = np.full((8, 12, 3), 64, np.uint8)
    other = np.full((20, 30, 3), 100, np.uint8)
    batch = stack_results([first, other])
    assert batch.shape == (2, 8, 12, 3)
    np.testing.assert_allclose(batch[0].numpy(), 64 / 255, atol=1e-7)
    np.testing.assert_allclose(batch[1].numpy(), 100 / 255, atol=1e-6)


def test_stacking_nothing_is_a_caller_error():
    with pytest.raises(ValueError):
        stack_results([])


def test_decoded_results_stack_into_an_image_batch():
    data = [png_bytes(Image.new("RGB", size, (0, 128, 255))) for size in [(6, 4), (3, 2)]]
    batch = stack_results([decode_image(item) for item in data])
    assert batch.shape == (2, 4, 6, 3)
    np.testing.assert_allclose(batch[1, 0, 0].numpy(), np.array([0, 128, 255]) / 255, atol=1e-6)
