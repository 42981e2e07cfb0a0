"""Specification of the persistent result cache in jobs/result_cache.py: the same paid request
is never billed twice, and a damaged, full or shared cache never fails a run."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.models import MULTI_MODELS
from fal_kontext.client.storage import ServedFile
from fal_kontext.jobs.result_cache import (
    DEFAULT_MAX_BYTES, ENTRY_FILE, UNSEEDED_KEY_PREFIX, CachedResult, ResultCache,
    default_result_cache, is_cacheable_key, result_cache_directory)
from fal_kontext.kontext.pipeline import request_key
from support import stored_bytes
from fal_kontext.nodes.comfy_paths import node_job_store
from fal_kontext.kontext import parameters

REFS = ["ref-a-sha256", "ref-b-sha256"]


def request(**changes) -> EditRequest:
    fields = {"model": MULTI_MODELS["pro"], "prompt": "put the hat from image 2 on image 1",
              "seed": 42}
    return EditRequest(**{**fields, **changes})


def image_bytes(fmt: str = "PNG", seed: int = 0, size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


PNG = image_bytes("PNG", 1)
JPEG = image_bytes("JPEG", 2)


def edit_result(images=((PNG, "image/png"), (JPEG, "image/jpeg")), **info) -> SimpleNamespace:
    return SimpleNamespace(
        images=[SimpleNamespace(data=data, content_type=ct) for data, ct in images],
        info={"request_id": "req-123", "seed": 42, "timings": {"inference": 1.5},
              "has_nsfw_concepts": [False, False], "cached": False, **info})


def key_for(n: int) -> str:
    return request_key(request(seed=n), REFS)


def entry_dir(root: Path, key: str) -> Path:
    return root / key[:2] / key


# --- keys -------------------------------------------------------------------------------------

CHANGED_FIELDS = {
    "model": MULTI_MODELS["max"],
    "prompt": "put the hat from image 2 on image 1.",
    "seed": 43,
    "guidance_scale": 3.6,
    "num_images": 2,
    "aspect_ratio": "16:9",
    "output_format": "png",
    "safety_tolerance": "3",
    "enhance_prompt": True,
    "sync_mode": True,
}


def test_key_is_stable_hex_for_equal_requests():
    key = request_key(request(), REFS)
    assert key == request_key(request(), list(REFS))
    assert is_cacheable_key(key) and len(key) == 64


def test_every_edit_request_field_is_covered_by_the_key_tests():
    assert set(CHANGED_FIELDS) == {"model", *parameters.FAL_FIELDS}


@pytest.mark.parametrize("field", sorted(CHANGED_FIELDS))
def test_changing_any_request_field_changes_the_key(field):
    changed = request().replace(**{field: CHANGED_FIELDS[field]})
    assert request_key(changed, REFS) != request_key(request(), REFS)


def test_equal_values_of_different_types_share_a_key():
    assert request_key(request(guidance_scale=4), REFS) == \
        request_key(request(guidance_scale=4.0), REFS)


def test_changed_reference_content_changes_the_key():
    assert request_key(request(), ["ref-a-sha256", "ref-c-sha256"]) != \
        request_key(request(), REFS)


def test_reference_order_and_count_matter():
    assert request_key(request(), list(reversed(REFS))) != request_key(request(), REFS)
    assert request_key(request(), REFS[:1]) != request_key(request(), REFS)


def test_key_does_not_depend_on_the_api_key(monkeypatch):
    before = request_key(request(), REFS)
    monkeypatch.setenv("FAL_KEY", "key-id:very-secret-value")
    assert request_key(request(), REFS) == before


def test_random_seed_runs_never_hit_and_are_never_stored(tmp_path):
    cache = ResultCache(tmp_path)
    first, second = (request_key(request(seed=None), REFS) for _ in range(2))
    assert first != second and first.startswith(UNSEEDED_KEY_PREFIX)
    assert not is_cacheable_key(first)
    cache.put(first, edit_result())
    assert cache.get(first) is None
    assert list(tmp_path.iterdir()) == []


# --- storing and reading ----------------------------------------------------------------------

def test_put_then_get_returns_identical_files_and_info(tmp_path):
    cache = ResultCache(tmp_path)
    key = key_for(1)
    result = edit_result()
    cache.put(key, result)
    cached = cache.get(key)
    assert cached == CachedResult(images=[(PNG, "image/png"), (JPEG, "image/jpeg")],
                                  info=result.info, served=(None, None))
    assert cache.get(key_for(2)) is None


def test_entry_layout_lists_files_with_sizes_and_hashes(tmp_path):
    key = key_for(1)
    ResultCache(tmp_path).put(key, edit_result())
    directory = entry_dir(tmp_path, key)
    assert sorted(p.name for p in directory.iterdir()) == ["0.png", "1.jpg", ENTRY_FILE]
    manifest = json.loads((directory / ENTRY_FILE).read_text("utf-8"))
    assert manifest["files"][0] == {"name": "0.png", "content_type": "image/png",
                                    "size": len(PNG), "sha256": hashlib.sha256(PNG).hexdigest()}
    assert (directory / "1.jpg").read_bytes() == JPEG


def test_new_instance_on_same_directory_hits_after_restart(tmp_path):
    key = key_for(1)
    ResultCache(tmp_path).put(key, edit_result())
    cached = ResultCache(tmp_path).get(key)
    assert cached is not None and cached.images[0] == (PNG, "image/png")


def test_second_put_of_same_key_keeps_the_first_entry(tmp_path):
    cache = ResultCache(tmp_path)
    key = key_for(1)
    cache.put(key, edit_result(request_id="first"))
    cache.put(key, edit_result(request_id="second"))
    assert cache.get(key).info["request_id"] == "first"


def test_info_that_is_not_json_is_not_stored_and_does_not_raise(tmp_path):
    cache = ResultCache(tmp_path)
    cache.put(key_for(1), edit_result(odd=object()))
    assert cache.get(key_for(1)) is None


# --- damage and failures ----------------------------------------------------------------------

def _delete_image(d: Path): (d / "0.png").unlink()
def _truncate_image(d: Path): (d / "0.png").write_bytes(PNG[:-10])
def _flip_image_byte(d: Path): (d / "0.png").write_bytes(PNG[:-1] + bytes([PNG[-1] ^ 0xFF]))
def _garble_manifest(d: Path): (d / ENTRY_FILE).write_text("{not json", "utf-8")
def _delete_manifest(d: Path): (d / ENTRY_FILE).unlink()
def _empty_manifest(d: Path): (d / ENTRY_FILE).write_bytes(b"")


def _escape_manifest(d: Path):
    manifest = json.loads((d / ENTRY_FILE).read_text("utf-8"))
    manifest["files"][0]["name"] = "../../outside.png"
    (d / ENTRY_FILE).write_text(json.dumps(manifest), "utf-8")


def _wrong_shape_manifest(d: Path):
    (d / ENTRY_FILE).write_text(json.dumps({"format": 1, "files": "0.png"}), "utf-8")


@pytest.mark.parametrize("damage", [_delete_image, _truncate_image, _flip_image_byte,
                                    _garble_manifest, _delete_manifest, _empty_manifest,
                                    _escape_manifest, _wrong_shape_manifest])
def test_damaged_entry_is_a_miss_and_is_removed(tmp_path, damage):
    cache = ResultCache(tmp_path)
    key = key_for(1)
    cache.put(key, edit_result())
    damage(entry_dir(tmp_path, key))
    assert cache.get(key) is None
    assert not entry_dir(tmp_path, key).exists()
    cache.put(key, edit_result())  # and the next paid run stores it again
    assert cache.get(key) is not None


def test_half_written_temp_dir_is_invisible(tmp_path):
    key = key_for(1)
    ResultCache(tmp_path / "scratch").put(key, edit_result())
    # A writer that crashed before its rename: complete files, never moved into place.
    temp = tmp_path / f".tmp-{key}-crashed"
    temp.mkdir()
    for item in entry_dir(tmp_path / "scratch", key).iterdir():
        (temp / item.name).write_bytes(item.read_bytes()[:5])
    assert ResultCache(tmp_path).get(key) is None


def test_stale_temp_dirs_are_cleaned_but_live_ones_are_kept(tmp_path):
    stale, live = tmp_path / ".tmp-stale", tmp_path / ".tmp-live"
    for d in (stale, live):
        d.mkdir()
        (d / "0.png").write_bytes(PNG[:10])
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    ResultCache(tmp_path).put(key_for(1), edit_result())
    assert not stale.exists() and live.exists()


def test_unwritable_cache_directory_degrades_to_miss_and_noop(tmp_path, caplog):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory should be")
    cache = ResultCache(blocked)
    cache.put(key_for(1), edit_result())  # must not raise
    assert cache.get(key_for(1)) is None
    assert any("could not store" in r.getMessage() for r in caplog.records)


# --- size bound -------------------------------------------------------------------------------

def test_lru_eviction_by_bytes_keeps_the_recently_read_entry(tmp_path):
    same = ((PNG, "image/png"),)  # identical files, so every entry has the same size
    probe = ResultCache(tmp_path / "probe")
    probe.put(key_for(0), edit_result(images=same))
    entry_size = stored_bytes(probe)

    cache = ResultCache(tmp_path / "cache", max_bytes=int(entry_size * 2.5))
    a, b, c = key_for(1), key_for(2), key_for(3)
    cache.put(a, edit_result(images=same))
    cache.put(b, edit_result(images=same))
    assert cache.get(a) is not None  # a is now more recent than b
    cache.put(c, edit_result(images=same))
    assert cache.get(b) is None
    assert cache.get(a) is not None and cache.get(c) is not None
    assert stored_bytes(cache) <= cache.max_bytes


def test_entry_larger_than_the_cap_is_not_stored(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=len(PNG) + len(JPEG))  # no room for entry.json too
    cache.put(key_for(1), edit_result())
    assert cache.get(key_for(1)) is None
    assert stored_bytes(cache) == 0


# --- concurrency ------------------------------------------------------------------------------

def test_eight_threads_putting_the_same_key_leave_one_valid_entry(tmp_path):
    cache = ResultCache(tmp_path)
    key = key_for(1)
    barrier = threading.Barrier(8)
    errors = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            ResultCache(tmp_path).put(key, edit_result(writer=n)) if n % 2 else \
                cache.put(key, edit_result(writer=n))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cached = cache.get(key)
    assert cached is not None and cached.images == [(PNG, "image/png"), (JPEG, "image/jpeg")]
    assert [p.name for p in (tmp_path / key[:2]).iterdir()] == [key]
    assert sorted(p.name for p in tmp_path.iterdir()) == [key[:2]]  # no temp dirs left over


WORKER = """
import hashlib, json, sys
from pathlib import Path
from types import SimpleNamespace
from fal_kontext.client.storage import ServedFile
from fal_kontext.jobs.result_cache import ResultCache
root, shared_key, own_key, image_path = sys.argv[1:5]
data = Path(image_path).read_bytes()
cache = ResultCache(Path(root))
result = SimpleNamespace(images=[SimpleNamespace(data=data, content_type="image/png")],
                         info={"seed": 42})
for key in (shared_key, own_key):
    cache.put(key, result)
found = {key: [hashlib.sha256(d).hexdigest() for d, _ in cache.get(key).images]
         for key in (shared_key, own_key)}
print(json.dumps(found))
"""


def test_processes_sharing_the_directory_see_consistent_entries(tmp_path):
    image_path = tmp_path / "image.png"
    image_path.write_bytes(PNG)
    root = tmp_path / "cache"
    shared = key_for(1)
    own = [key_for(10 + n) for n in range(3)]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), shared, key,
                                 str(image_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for key in own]
    outputs = [w.communicate(timeout=30) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [err for _, err in outputs]

    digest = hashlib.sha256(PNG).hexdigest()
    for (out, _), key in zip(outputs, own):
        assert json.loads(out) == {shared: [digest], key: [digest]}
    here = ResultCache(root)
    for key in (shared, *own):
        assert here.get(key).images == [(PNG, "image/png")]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


# --- configuration ----------------------------------------------------------------------------

@pytest.fixture
def no_comfyui(monkeypatch):
    monkeypatch.setitem(sys.modules, "folder_paths", None)  # makes `import folder_paths` fail


@pytest.mark.parametrize("value", ["0", "off", "false", "no", "OFF", " No "])
def test_cache_can_be_switched_off(value, tmp_path):
    assert default_result_cache({"FAL_KONTEXT_RESULT_CACHE": value,
                                 "FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path)}) is None


def test_directory_and_size_come_from_the_environment(tmp_path, no_comfyui):
    cache = default_result_cache({"FAL_KONTEXT_RESULT_CACHE": "1",
                                  "FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path / "mine"),
                                  "FAL_KONTEXT_RESULT_CACHE_MAX_MB": "5"})
    assert cache.directory == tmp_path / "mine"
    assert cache.max_bytes == 5 * 1024 * 1024


def test_default_size_is_1024_mb_and_bad_size_falls_back_to_it(tmp_path, caplog):
    env = {"FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path)}
    assert default_result_cache(env).max_bytes == DEFAULT_MAX_BYTES == 1024 * 1024 * 1024
    bad = default_result_cache({**env, "FAL_KONTEXT_RESULT_CACHE_MAX_MB": "lots"})
    assert bad.max_bytes == DEFAULT_MAX_BYTES
    assert any("FAL_KONTEXT_RESULT_CACHE_MAX_MB" in r.getMessage() for r in caplog.records)


def test_zero_size_switches_the_cache_off(tmp_path):
    assert default_result_cache({"FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path),
                                 "FAL_KONTEXT_RESULT_CACHE_MAX_MB": "0"}) is None


def test_same_configuration_shares_one_cache_object(tmp_path):
    env = {"FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path)}
    assert default_result_cache(env) is default_result_cache(dict(env))


def test_inside_comfyui_the_user_directory_is_used(tmp_path, monkeypatch):
    fake = types.ModuleType("folder_paths")
    fake.get_user_directory = lambda: str(tmp_path / "user")
    fake.get_temp_directory = lambda: str(tmp_path / "temp")
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    monkeypatch.delenv("FAL_KONTEXT_RESULT_CACHE_DIR")
    assert node_job_store().cache.directory == tmp_path / "user" / "fal-kontext" / "results"
    monkeypatch.setenv("FAL_KONTEXT_RESULT_CACHE_DIR", str(tmp_path / "x"))
    assert node_job_store().cache.directory == tmp_path / "x"
    assert default_result_cache({}).directory != tmp_path / "user" / "fal-kontext" / "results"


def test_inside_older_comfyui_the_temp_directory_is_used(tmp_path, monkeypatch):
    fake = types.ModuleType("folder_paths")
    fake.get_temp_directory = lambda: str(tmp_path / "temp")
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    monkeypatch.delenv("FAL_KONTEXT_RESULT_CACHE_DIR")
    assert node_job_store().cache.directory == tmp_path / "temp" / "fal-kontext" / "results"


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"}, "/xdg"),
    ("linux", {"HOME": "/home/u"}, "/home/u/.cache"),
    ("darwin", {"HOME": "/Users/u"}, "/Users/u/Library/Caches"),
    ("win32", {"HOME": "/c/u", "LOCALAPPDATA": "/c/u/AppData/Local"}, "/c/u/AppData/Local"),
])
def test_outside_comfyui_the_platform_user_cache_is_used(platform, env, expected, no_comfyui):
    assert result_cache_directory(env, platform) == Path(expected) / "fal-kontext" / "results"


# --- where fal serves each file (chained edits) -------------------------------------------------

def test_where_fal_serves_each_file_is_stored_with_the_entry(tmp_path):
    cache = ResultCache(tmp_path)
    result = edit_result()
    served = ServedFile("https://v3.fal.media/files/a/out_0.png", "https://queue.fal.run", 1234.5)
    result.images[0].served = served
    cache.put(key_for(1), result)
    assert cache.get(key_for(1)).served == (served, None)


@pytest.mark.parametrize("field, value", [("served_url", "ftp://x/y"), ("served_url", 7),
                                          ("served_reuse_until", "soon"),
                                          ("served_reuse_until", float("inf")),
                                          ("served_by", None)])
def test_a_malformed_note_of_where_fal_serves_a_file_is_ignored_not_a_miss(tmp_path, field, value):
    cache = ResultCache(tmp_path)
    result = edit_result()
    result.images[0].served = ServedFile("https://v3.fal.media/a.png", "https://queue.fal.run", 9.0)
    cache.put(key_for(1), result)
    manifest_path = entry_dir(tmp_path, key_for(1)) / "entry.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0][field] = value
    manifest_path.write_text(json.dumps(manifest))  # json writes inf as Infinity: still JSON here
    cached = cache.get(key_for(1))
    assert cached is not None and cached.images[0] == (PNG, "image/png")
    assert cached.served == (None, None)
