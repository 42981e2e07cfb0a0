"""Never pay twice for the same picture: the result cache across restarts, and an upload cache
that never hands fal a URL that stopped working."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from node_calls import call_node, solid
from fal_kontext.client import SHARED_UPLOAD_CACHE, FalClient, UploadCache
from fal_kontext.kontext import models as m
from fal_kontext.jobs import result_cache
from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.pipeline import run_edit
from fal_kontext.kontext.spending import SpendTracker
from fal_kontext.nodes.kontext_nodes import FalKontextMulti
from fault_matrix import reference
from results_book import table

pytestmark = pytest.mark.anyio
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
ROWS: dict[str, list[object]] = {}
BASE = {"prompt": "same picture", "seed": 42}


@pytest.fixture(scope="module", autouse=True)
def cache_results(results_book):
    yield
    if len(ROWS) == len(CHANGES) + 9:
        results_book.set_section("result-cache", "## Result cache and upload cache\n\n" + table(
            ["scenario", "submits for the second run", "outcome"], list(ROWS.values())))


def simulate_restart() -> None:
    """What a ComfyUI restart clears: in-process upload URLs and cache objects (not the disk)."""
    SHARED_UPLOAD_CACHE.clear()
    result_cache._SHARED_CACHES.clear()


async def run_node(**changes):
    return await call_node(FalKontextMulti, **{**BASE, "images": solid(RED), **changes})


async def test_the_same_run_after_a_restart_costs_nothing(fal_env):
    first, _, _ = await run_node()
    simulate_restart()
    second, _, info = await run_node()
    assert torch.equal(first, second) and json.loads(info)["cached"] is True
    assert len(fal_env.submits()) == 1 and fal_env.count("upload") == 1
    ROWS["restart"] = ["same seeded run after a simulated restart", 0, "served from disk, no upload"]


async def test_the_same_run_in_a_new_process_costs_nothing(fal_env, tmp_path):
    await run_node()
    script = textwrap.dedent("""
        import asyncio, json, sys
        sys.path.insert(0, sys.argv[1])
        from node_calls import call_node, solid
        from fal_kontext.nodes.kontext_nodes import FalKontextMulti
        _, _, info = asyncio.run(call_node(FalKontextMulti, prompt="same picture", seed=42,
                                           images=solid((1.0, 0.0, 0.0))))
        print(json.loads(info)["cached"])
    """)
    tests = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script, str(tests)],
                          env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True" and len(fal_env.submits()) == 1
    ROWS["process"] = ["same seeded run in a new Python process", 0, "served from disk"]


CHANGES = {
    "prompt": {"prompt": "another picture"}, "seed": {"seed": 43},
    "guidance_scale": {"guidance_scale": 4.0}, "num_images": {"num_images": 2},
    "aspect_ratio": {"aspect_ratio": "16:9"}, "output_format": {"output_format": "png"},
    "safety_tolerance": {"safety_tolerance": "3"}, "enhance_prompt": {"enhance_prompt": True},
    "model": {"model": "max"}, "one reference pixel": {"images": None},
    "another reference": {"image_2": solid(BLUE)},
}


@pytest.mark.parametrize("change", CHANGES)
async def test_any_changed_argument_or_pixel_is_a_miss(fal_env, change):
    await run_node()
    changes = dict(CHANGES[change])
    if change == "one reference pixel":
        image = solid(RED)
        image[0, 5, 5, 1] = 1 / 255
        changes["images"] = image
    simulate_restart()
    _, _, info = await run_node(**changes)
    assert json.loads(info)["cached"] is False and len(fal_env.submits()) == 2
    ROWS[change] = [f"changed {change}", 1, "miss: ran again"]


@pytest.mark.parametrize("damage", ["image bytes", "entry.json"])
async def test_a_corrupted_entry_is_a_miss_not_a_crash(fal_env, damage):
    await run_node()
    directory = Path(os.environ["FAL_KONTEXT_RESULT_CACHE_DIR"])
    target = next(directory.rglob("0.*" if damage == "image bytes" else "entry.json"))
    target.write_bytes(target.read_bytes()[:-7] + b"garbage")
    simulate_restart()
    images, _, info = await run_node()
    assert images.shape[0] == 1 and json.loads(info)["cached"] is False
    assert len(fal_env.submits()) == 2
    ROWS[f"corrupt {damage}"] = [f"cache entry with damaged {damage}", 1, "miss: ran again, no crash"]


async def test_sync_mode_results_are_cached_too(fal_env):
    await run_node(sync_mode=True)
    simulate_restart()
    _, _, info = await run_node(sync_mode=True)
    assert json.loads(info)["cached"] is True and len(fal_env.submits()) == 1
    assert fal_env.count("file") == 0
    ROWS["sync"] = ["sync_mode run repeated", 0, "served from disk"]


@pytest.mark.parametrize("switch", ["use_result_cache=False", "FAL_KONTEXT_RESULT_CACHE=0"])
async def test_the_cache_can_be_turned_off(fal_env, monkeypatch, switch):
    changes = {"use_result_cache": False} if switch.startswith("use") else {}
    if not changes:
        monkeypatch.setenv("FAL_KONTEXT_RESULT_CACHE", "0")
    await run_node(**changes)
    _, _, info = await run_node(**changes)
    assert json.loads(info)["cached"] is False and len(fal_env.submits()) == 2
    assert not any(Path(os.environ["FAL_KONTEXT_RESULT_CACHE_DIR"]).rglob("entry.json"))
    ROWS[switch] = [switch, 1, "ran again, nothing stored"]


async def test_an_upload_cache_entry_expires(fal_env):
    now = [0.0]
    uploads = UploadCache(ttl=60.0, clock=lambda: now[0])
    async with FalClient(upload_cache=uploads) as client:
        request = EditRequest(m.MULTI_MODELS["pro"], "p", seed=None)
        await run_edit(client, request, [reference(1)], spending=SpendTracker())
        await run_edit(client, request, [reference(1)], spending=SpendTracker())
        assert fal_env.count("upload") == 1
        now[0] = 61.0
        await run_edit(client, request, [reference(1)], spending=SpendTracker())
    assert fal_env.count("upload") == 2
    ROWS["ttl"] = ["reference re-used after the upload cache TTL", 1, "uploaded again, then submitted"]


async def test_a_cached_upload_fal_cannot_fetch_is_uploaded_again_once(fal_env):
    spending = SpendTracker()
    async with FalClient() as client:
        await run_edit(client, EditRequest(m.MULTI_MODELS["pro"], "first", seed=None),
                       [reference(1)], spending=spending)
        stale_url = next(iter(fal_env.jobs.values())).arguments["image_urls"][0]
        # fal's storage lost the file (expired or deleted): its URL now 404s.
        fal_env._state.store._files.pop(stale_url.split("/files/")[1].split("/")[0])
        fal_env.clear_requests()
        result = await run_edit(client, EditRequest(m.MULTI_MODELS["pro"], "second", seed=None),
                                [reference(1)], spending=spending)
    submits = fal_env.submits()
    assert len(result.images) == 1 and fal_env.count("upload") == 1 and len(submits) == 2
    assert submits[0].json()["image_urls"] == [stale_url] != submits[1].json()["image_urls"]
    assert len(fal_env.jobs) == 2, "the refused submit created no job"
    assert spending.spent_usd == pytest.approx(0.08), "the refused submit is not counted as spent"
    ROWS["stale"] = ["cached reference URL that fal can no longer fetch", 2,
                     "422 file_download_error (no job), uploaded once more, second submit succeeded"]
