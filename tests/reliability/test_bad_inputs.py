"""Bad inputs through the node and through run_edit: a clear error naming the input before any
money is spent (zero submits), or handled correctly; none leaves a job running."""
from __future__ import annotations

import math
import os
import struct
import threading
import time
import zlib

import pytest
import torch

from node_calls import call_node, solid
from fal_kontext.client import ConfigurationError, ValidationError
from fal_kontext.kontext.errors import DecodeError, InvalidInputError
from fal_kontext.kontext import models as m
from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.pipeline import EditOptions, Reference, run_edit
from fal_kontext.kontext.spending import SpendTracker
from fal_kontext.nodes.kontext_nodes import FalKontextMulti
from fal_kontext.client import FalClient
from fault_matrix import reference
from results_book import table
from support import TEST_KEY

pytestmark = pytest.mark.anyio
RED = (1.0, 0.0, 0.0)
ROWS: dict[str, list[object]] = {}


@pytest.fixture(scope="module", autouse=True)
def bad_input_results(results_book):
    yield
    if len(ROWS) == len(NODE_CASES) + len(EDIT_CASES) + 10:
        results_book.set_section("bad-inputs", "## Bad inputs\n\n" + table(
            ["input", "through", "submits", "outcome"], list(ROWS.values())))


def frames(batch=1, height=16, width=16, channels=3, dtype=torch.float32, fill=0.5):
    return torch.full((batch, height, width, channels), fill, dtype=dtype)


def with_values(*values):
    image = frames()
    for index, value in enumerate(values):
        image[0, index, 0, 0] = value
    return image


# name -> (node inputs, the input the error must name, or None when it must succeed)
NODE_CASES = {
    "empty prompt": ({"prompt": ""}, "prompt"),
    "whitespace prompt": ({"prompt": " \n\t "}, "prompt"),
    "prompt over 10,000 characters": ({"prompt": "x" * 10_001}, "prompt"),
    "no reference": ({"images": None}, "images"),
    "9 references": ({"images": frames(batch=5), "image_2": frames(batch=4)}, "images"),
    "zero-size image": ({"images": frames(height=0)}, "images"),
    "empty batch": ({"images": frames(batch=0)}, "images"),
    "5-channel tensor": ({"images": frames(channels=5)}, "images"),
    "channels-first tensor": ({"images": torch.full((1, 3, 16, 16), 0.5)}, "images"),
    "uint8 tensor": ({"images": frames(dtype=torch.uint8, fill=128)}, "images"),
    "NaN pixel": ({"images": with_values(math.nan)}, "images"),
    "infinite pixel": ({"images": with_values(math.inf)}, "images"),
    "not a tensor": ({"images": [[0.5]]}, "images"),
    "num_images 0": ({"num_images": 0}, "num_images"),
    "num_images 5": ({"num_images": 5}, "num_images"),
    "guidance 0.5": ({"guidance_scale": 0.5}, "guidance_scale"),
    "guidance 25": ({"guidance_scale": 25.0}, "guidance_scale"),
    "guidance NaN": ({"guidance_scale": math.nan}, "guidance_scale"),
    "seed -1": ({"seed": -1}, "seed"),
    "unknown aspect ratio 5:4": ({"aspect_ratio": "5:4"}, "aspect_ratio"),
    "unknown model ultra": ({"model": "ultra"}, "model"),
    "unknown format gif": ({"output_format": "gif"}, "output_format"),
    "safety_tolerance 7": ({"safety_tolerance": "7"}, "safety_tolerance"),
    "unknown reference_transport": ({"reference_transport": "ftp"}, "reference_transport"),
    "unknown nsfw_policy": ({"nsfw_policy": "blur"}, "nsfw_policy"),
    "timeout 5 s": ({"timeout_seconds": 5}, "timeout_seconds"),
    "1-channel tensor": ({"images": frames(channels=1)}, None),
    "2-channel tensor": ({"images": frames(channels=2)}, None),
    "4-channel tensor": ({"images": frames(channels=4)}, None),
    "float16 tensor": ({"images": frames(dtype=torch.float16)}, None),
    "float64 tensor": ({"images": frames(dtype=torch.float64)}, None),
    "values outside 0..1": ({"images": with_values(-3.0, 1.7, 250.0)}, None),
}


@pytest.mark.parametrize("case", NODE_CASES)
async def test_node_input(fal_env, case):
    inputs, named = NODE_CASES[case]
    arguments = {"prompt": "p", "images": solid(RED), "use_result_cache": False, **inputs}
    if named is None:
        images, _, _ = await call_node(FalKontextMulti, **arguments)
        assert images.shape[0] == 1 and torch.isfinite(images).all()
        assert len(fal_env.submits()) == 1
        ROWS[f"node {case}"] = [case, "node", 1, "handled: edited image returned"]
        return
    with pytest.raises(InvalidInputError) as caught:
        await call_node(FalKontextMulti, **arguments)
    error = caught.value
    assert error.input_name == named and str(error).startswith(f"{named} ") and "\n" not in str(error)
    assert fal_env.submits() == [] and fal_env.jobs == {}
    ROWS[f"node {case}"] = [case, "node", 0, f"InvalidInputError: {error}"[:160]]


def request(**changes):
    return EditRequest(**{"model": m.MULTI_MODELS["pro"], "prompt": "p", "seed": 1, **changes})


EDIT_CASES = {
    "empty prompt": (request(prompt=""), 1, {}, "prompt"),
    "whitespace prompt": (request(prompt="   "), 1, {}, "prompt"),
    "prompt over 10,000 characters": (request(prompt="y" * 10_001), 1, {}, "prompt"),
    "no reference": (request(), 0, {}, "images"),
    "9 references": (request(), 9, {}, "images"),
    "num_images 0": (request(num_images=0), 1, {}, "num_images"),
    "num_images 5": (request(num_images=5), 1, {}, "num_images"),
    "guidance 25": (request(guidance_scale=25.0), 1, {}, "guidance_scale"),
    "guidance inf": (request(guidance_scale=math.inf), 1, {}, "guidance_scale"),
    "seed 2**31": (request(seed=2**31), 1, {}, "seed"),
    "aspect ratio 5:4": (request(aspect_ratio="5:4"), 1, {}, "aspect_ratio"),
    "format gif": (request(output_format="gif"), 1, {}, "output_format"),
    "safety_tolerance 0": (request(safety_tolerance="0"), 1, {}, "safety_tolerance"),
    "enhance_prompt 'yes'": (request(enhance_prompt="yes"), 1, {}, "enhance_prompt"),
    "transport ftp": (request(), 1, {"transport": "ftp"}, "reference_transport"),
    "timeout 1 hour + 1 s": (request(), 1, {"timeout": 3601.0}, "timeout_seconds"),
}


@pytest.mark.parametrize("case", EDIT_CASES)
async def test_run_edit_input(fal_env, case):
    edit, reference_count, options, named = EDIT_CASES[case]
    async with FalClient() as client:
        with pytest.raises(InvalidInputError) as caught:
            await run_edit(client, edit, [reference(i) for i in range(reference_count)],
                           options=EditOptions(**options), spending=SpendTracker())
    assert caught.value.input_name == named and "\n" not in str(caught.value)
    assert fal_env.requests == [], "refused before anything was uploaded or submitted"
    ROWS[f"run_edit {case}"] = [case, "run_edit", 0, f"InvalidInputError: {caught.value}"[:160]]


async def test_reference_bytes_that_are_no_image_are_refused_by_fal_without_a_job(fal_env):
    garbage = Reference("image 1", "garbage", lambda: (b"\x89PNG not really", "image/png"))
    async with FalClient() as client:
        with pytest.raises(ValidationError) as caught:
            await run_edit(client, request(), [garbage], spending=SpendTracker())
    assert "image_urls[0]" in str(caught.value) and fal_env.jobs == {}
    assert len(fal_env.submits()) == 1, "a fresh upload is not retried: only stale cached ones are"
    ROWS["run_edit garbage"] = ["reference bytes that are not an image", "run_edit",
                                len(fal_env.submits()), f"ValidationError (422 at submit, no job): {caught.value}"[:160]]


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG that declares width x height pixels but compresses to a few hundred KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("served", ["decompression bomb (20000x20000 PNG)", "unreadable bytes"])
async def test_a_bad_result_image_is_a_decode_error_naming_the_job(fal_env, served):
    body = bomb_png(20_000, 20_000) if served.startswith("decompression") else b"\x00garbage" * 100
    fal_env.faults.add("file", status=200, body=body, content_type="image/png")
    started = time.monotonic()
    with pytest.raises(DecodeError) as caught:
        await call_node(FalKontextMulti, prompt="p", images=solid(RED), use_result_cache=False)
    job_id = next(iter(fal_env.jobs))
    assert caught.value.request_id == job_id and job_id in str(caught.value)
    assert len(fal_env.submits()) == 1 and time.monotonic() - started < 5
    ROWS[f"node {served}"] = [f"result image: {served}", "node", 1, f"DecodeError: {caught.value}"[:200]]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_an_8k_reference_is_downscaled_with_bounded_memory(fal_env):
    image = torch.full((1, 8192, 8192, 3), 0.25)
    image[:, :, 4096:, 1] = 0.75  # two halves, so the downscale has something to keep
    baseline, peak, sampling = _rss_bytes(), [0], True

    def sample() -> None:
        while sampling:
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        images, _, _ = await call_node(FalKontextMulti, prompt="p", images=image,
                                       max_reference_megapixels=4.0, use_result_cache=False)
    finally:
        sampling = False
        sampler.join()
    seconds = time.monotonic() - started
    width, height = next(iter(fal_env.jobs.values())).reference_sizes[0]
    tensor_mb = image.numel() * 4 / 2**20
    extra_mb = (peak[0] - baseline) / 2**20
    assert width * height <= 4_000_000 and abs(width / height - 1) < 0.01
    assert extra_mb < 2.5 * tensor_mb, f"{extra_mb:.0f} MB on top of a {tensor_mb:.0f} MB input"
    assert images.shape[0] == 1 and len(fal_env.submits()) == 1
    ROWS["node 8k"] = ["8192x8192 RGB reference", "node", 1,
                       f"handled: sent as {width}x{height}; peak memory +{extra_mb:.0f} MB over the "
                       f"{tensor_mb:.0f} MB input tensor; {seconds:.1f} s"]


@pytest.mark.parametrize("raw", ["  {key}\n", '"{key}"', "'{key}' ", "Key {key}"])
async def test_a_pasted_key_with_whitespace_or_quotes_is_cleaned(monkeypatch, raw):
    from fal_kontext.standin import StandInServer
    with StandInServer(processing_delay=0.05, api_key=TEST_KEY) as server:  # refuses any other key
        monkeypatch.setenv("FAL_KEY", raw.format(key=TEST_KEY))
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        images, _, _ = await call_node(FalKontextMulti, prompt="p", images=solid(RED),
                                       use_result_cache=False)
        assert images.shape[0] == 1
        assert {r.headers.get("authorization") for r in server.requests if r.route == "submit"} \
            == {f"Key {TEST_KEY}"}
    ROWS["key " + raw] = [f"FAL_KEY pasted as {raw.format(key='<key>')!r}", "node", 1,
                          "handled: cleaned, accepted by the server"]


@pytest.mark.parametrize("base_url", ["http://fal.example.com", "http://10.0.0.5:8080"])
async def test_a_plain_http_non_local_base_url_is_refused_before_any_request(monkeypatch, base_url):
    monkeypatch.setenv("FAL_KEY", TEST_KEY)
    monkeypatch.setenv("FAL_KONTEXT_BASE_URL", base_url)
    with pytest.raises(ConfigurationError) as caught:
        await call_node(FalKontextMulti, prompt="p", images=solid(RED))
    assert "https" in str(caught.value) and TEST_KEY not in str(caught.value)
    ROWS[f"base {base_url}"] = [f"FAL_KONTEXT_BASE_URL={base_url}", "node", 0,
                                f"ConfigurationError: {caught.value}"[:160]]
