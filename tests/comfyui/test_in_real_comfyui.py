"""The pack inside a real ComfyUI, against the stand-in fal server.

Skipped unless COMFYUI_DIR points at a ComfyUI checkout (one with main.py). COMFYUI_PYTHON is
the interpreter that runs it (default: this one); it needs ComfyUI's requirements and this
pack's dependencies (httpx, pillow, numpy). ComfyUI is started as a subprocess on a free port,
with the pack linked into its custom_nodes (a symlink `fal-kontext` is created if no entry
there already resolves to this pack). Nothing else in the checkout is touched: input, output,
temp and user folders are temporary ones passed on the command line, and the database is
in memory.

    COMFYUI_DIR=/tmp/comfyui COMFYUI_PYTHON=/tmp/comfyui-venv/bin/python \
        python -m pytest tests/comfyui -v
"""
from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from comfy_rules import widget_slots
from comfyui_process import (
    COMFYUI_DIR,
    COMFYUI_PYTHON,
    HAVE_COMFYUI,
    PACK_ROOT,
    ComfyUI,
    link_pack,
    messages,
)
from fal_kontext import NODE_CLASS_MAPPINGS
from fal_kontext.nodes.flux2_nodes import FalFlux2Edit
from fal_kontext.nodes.price_route import PRICES_ROUTE, price_table
from fal_kontext.nodes.sample_inputs import sample_files
from fal_kontext.standin import StandInServer

WORKFLOWS = PACK_ROOT / "workflows"
API_WORKFLOWS = sorted((WORKFLOWS / "api").glob("*.json"))
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))
# The API prompts the first release shipped, byte for byte (tests/compat/fixtures/0.1.0/).
API_PROMPTS_0_1_0 = sorted((Path(__file__).resolve().parents[1] / "compat" / "fixtures" / "0.1.0"
                            / "api").glob("*.json"))
KONTEXT_NODES = ("FalKontextMulti", "FalKontextEdit")
PACK_NODES = ("FalKontextMulti", "FalKontextEdit", "FalFlux2Edit")
TEST_KEY = "test-key-123"

pytestmark = [
    pytest.mark.skipif(not HAVE_COMFYUI,
                       reason="set COMFYUI_DIR to a ComfyUI checkout to run the pack in ComfyUI"),
    pytest.mark.timeout(600),
]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def standin() -> Iterator[StandInServer]:
    with StandInServer(processing_delay=1.0) as server:
        yield server


@pytest.fixture(scope="module")
def comfy(standin: StandInServer, tmp_path_factory) -> Iterator[tuple[ComfyUI, str]]:
    root = Path(COMFYUI_DIR).resolve()
    pack_folder = link_pack(root / "custom_nodes")
    work = tmp_path_factory.mktemp("comfyui")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FAL_", "PYTEST_"))}
    env.update({
        "FAL_KEY": TEST_KEY,
        "FAL_KONTEXT_BASE_URL": standin.base_url,
        "FAL_KONTEXT_CONFIG": str(work / "no-config.json"),
        "FAL_KONTEXT_RESULT_CACHE_DIR": str(work / "result-cache"),
        "PYTHONUNBUFFERED": "1",
    })
    server = ComfyUI(root, COMFYUI_PYTHON, env, work)
    try:
        server.start()  # with an empty --input-directory: the pack brings its sample images
        yield server, pack_folder
    finally:
        server.stop()


def _pack_node_ids(prompt: dict) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] in PACK_NODES]


def _with_seeds(prompt: dict, offset: int) -> dict:
    """A copy with every seed of the pack's nodes moved by `offset` (so neither ComfyUI's output
    cache nor the pack's result cache can answer, and the node really calls fal)."""
    prompt = json.loads(json.dumps(prompt))
    for node_id in _pack_node_ids(prompt):
        prompt[node_id]["inputs"]["seed"] = int(prompt[node_id]["inputs"]["seed"]) + offset
    return prompt


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- tests

def test_an_empty_input_folder_gets_the_sample_images_on_load(comfy):
    server, _ = comfy
    samples = sample_files()
    assert samples
    assert sorted(path.name for path in server.input_dir.iterdir()) == [s.name for s in samples]
    for sample in samples:
        assert (server.input_dir / sample.name).read_bytes() == sample.read_bytes()
    assert "sample image(s) for the example workflows" in server.log()


def test_the_price_badge_route_serves_the_price_table(comfy):
    server, _ = comfy
    assert server.get("/api" + PRICES_ROUTE) == server.get(PRICES_ROUTE) == price_table()


def test_the_frontend_extension_is_served(comfy):
    server, pack_folder = comfy
    assert f"/extensions/{pack_folder}/kontext_price_badge.js" in server.get("/extensions")


def test_pack_loads_without_import_failure(comfy):
    server, pack_folder = comfy
    log = server.log()
    assert pack_folder in log, log  # listed under "Import times for custom nodes"
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and pack_folder in line]
    assert not failed, "\n".join(failed) + "\n" + log


@pytest.mark.parametrize("node_type, sockets", [
    ("FalKontextMulti", {"images"}), ("FalKontextEdit", {"image"})])
def test_nodes_appear_in_object_info_with_their_inputs(comfy, node_type, sockets):
    server, _ = comfy
    info = server.get(f"/object_info/{node_type}")[node_type]
    required = info["input"]["required"]
    widgets = {"prompt", "model", "seed", "guidance_scale", "num_images", "aspect_ratio",
               "output_format", "safety_tolerance", "enhance_prompt", "sync_mode"}
    assert widgets | sockets <= set(required), sorted(required)
    for socket_name in sockets:
        assert required[socket_name][0] == "IMAGE"
    assert required["seed"][1].get("control_after_generate") is True
    assert info["input"]["hidden"] == {"unique_id": "UNIQUE_ID"}
    assert info["output"] == ["IMAGE", "INT", "STRING"]
    assert info["category"].startswith("api node/")
    if node_type == "FalKontextMulti":
        assert {"image_2", "image_3", "image_4"} <= set(info["input"]["optional"])


@pytest.mark.parametrize("node_type", KONTEXT_NODES)
def test_object_info_gives_the_frontend_the_widget_order_saved_workflows_expect(comfy, node_type):
    """The frontend lays widgets out from /object_info's input_order, required then optional;
    the 0.1.0 layout must come first, unchanged."""
    server, _ = comfy
    info = server.get(f"/object_info/{node_type}")[node_type]
    ordered = {section: {name: info["input"][section][name] for name in info["input_order"][section]}
               for section in ("required", "optional")}
    slots = widget_slots(ordered)
    assert slots == widget_slots(NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES())
    released = json.loads((Path(__file__).resolve().parents[1] / "compat" / "interfaces"
                           / "0.1.0.json").read_text(encoding="utf-8"))["nodes"][node_type]
    assert slots[:len(released["widgets"])] == released["widgets"]


def test_the_flux2_node_appears_in_object_info_with_its_inputs(comfy):
    server, _ = comfy
    info = server.get("/object_info/FalFlux2Edit")["FalFlux2Edit"]
    required = info["input"]["required"]
    assert list(required) == list(FalFlux2Edit.INPUT_TYPES()["required"]), \
        "ComfyUI keeps the widget order saved workflows rely on"
    assert required["model"][0] == ["pro", "max", "flex"] and required["images"][0] == "IMAGE"
    assert required["seed"][1].get("control_after_generate") is True
    assert set(info["input"]["optional"]) == {"image_2", "image_3", "image_4"}
    assert info["output"] == ["IMAGE", "INT", "STRING"]
    assert info["category"] == "fal/FLUX.2" and info["display_name"] == "FLUX.2 Edit (fal)"


def _one_prompt(*graphs: dict) -> dict:
    """Several API-format graphs as one prompt, node ids renumbered so none collide."""
    merged: dict = {}
    for index, graph in enumerate(graphs):
        renumber = {node_id: str(int(node_id) + 100 * index) for node_id in graph}
        for node_id, node in graph.items():
            inputs = {name: [renumber[value[0]], value[1]] if isinstance(value, list) else value
                      for name, value in node["inputs"].items()}
            merged[renumber[node_id]] = {**node, "inputs": inputs}
    return merged


def test_a_flux2_and_a_kontext_node_run_in_the_same_prompt(comfy, standin):
    server, _ = comfy
    flux2 = next(path for path in API_WORKFLOWS if path.stem.startswith("FLUX.2 - "))
    kontext = next(path for path in API_WORKFLOWS if path.stem.startswith("Kontext - "))
    prompt = _with_seeds(_one_prompt(_load(flux2), _load(kontext)), 400_000)
    standin.clear_requests()
    entry = server.run(prompt)
    assert len(server.saved_images(entry)) >= 2, entry["outputs"]
    bodies = {request.path.strip("/"): request.json() for request in standin.submits()}
    assert set(bodies) == {"fal-ai/flux-2-pro/edit", "fal-ai/flux-pro/kontext/multi"}, bodies
    assert "num_images" not in bodies["fal-ai/flux-2-pro/edit"]
    assert bodies["fal-ai/flux-2-pro/edit"]["image_size"] == "auto"
    assert "num_images" in bodies["fal-ai/flux-pro/kontext/multi"]
    billed = {bill.endpoint_id: bill for bill in standin.billed_jobs()
              if bill.endpoint_id in bodies}
    assert billed["fal-ai/flux-2-pro/edit"].megapixels >= 1
    assert not standin.cancels()


def test_workflow_templates_lists_our_ui_workflows(comfy):
    server, pack_folder = comfy
    assert UI_WORKFLOWS, "no UI-format workflows in workflows/"
    templates = server.get("/workflow_templates")
    assert sorted(templates.get(pack_folder, [])) == sorted(path.stem for path in UI_WORKFLOWS)
    for path in UI_WORKFLOWS:  # and ComfyUI serves them, so the template browser can open them
        served = server.get(f"/api/workflow_templates/{pack_folder}/{quote(path.name)}")
        assert served == _load(path)
        thumbnail = f"{server.base}/api/workflow_templates/{pack_folder}/{quote(path.stem)}.jpg"
        with urllib.request.urlopen(thumbnail, timeout=10) as response:  # else a placeholder
            assert response.headers["Content-Type"] == "image/jpeg"
            assert response.read() == path.with_suffix(".jpg").read_bytes()


def test_there_are_api_workflows():
    assert API_WORKFLOWS, "no API-format workflows in workflows/api/"


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=[path.stem for path in API_WORKFLOWS])
def test_api_workflow_runs(comfy, standin, path):
    server, _ = comfy
    prompt = _load(path)
    pack_nodes = _pack_node_ids(prompt)
    assert pack_nodes, f"{path.name} has no node of the pack"
    standin.clear_requests()
    entry = server.run(prompt)
    images = server.saved_images(entry)
    assert images, entry["outputs"]
    for image in images:
        assert image.is_file() and image.stat().st_size > 0, image
    assert len(standin.submits()) == len(pack_nodes), [r.path for r in standin.requests]
    assert not standin.cancels()


@pytest.mark.parametrize("path", API_PROMPTS_0_1_0, ids=[path.stem for path in API_PROMPTS_0_1_0])
def test_api_prompts_saved_with_0_1_0_still_run(comfy, standin, path):
    """Posted as shipped: no reference_encoding, which ComfyUI once refused as missing."""
    server, _ = comfy
    prompt = _load(path)
    kontext_nodes = _pack_node_ids(prompt)
    assert kontext_nodes and all("reference_encoding" not in prompt[node_id]["inputs"]
                                 for node_id in kontext_nodes)
    standin.clear_requests()
    entry = server.run(prompt)  # queue() fails on node_errors, run() on anything but success
    assert server.saved_images(entry), entry["outputs"]
    submits = standin.submits()
    assert len(submits) == len(kontext_nodes), [r.path for r in standin.requests]
    for node_id, submit in zip(kontext_nodes, submits):
        saved = prompt[node_id]["inputs"]
        body = submit.json()
        assert (body["prompt"], body["seed"], body["num_images"]) == (
            saved["prompt"], saved["seed"], saved["num_images"])


def test_prompts_after_the_first_run_in_their_own_event_loop(comfy, standin):
    """Each prompt gets a new asyncio loop; nothing loop-bound may carry over between them."""
    server, _ = comfy
    prompt = _load(API_WORKFLOWS[0])
    expected = len(_pack_node_ids(prompt))
    for offset in (100_001, 100_002, 100_003):
        standin.clear_requests()
        entry = server.run(_with_seeds(prompt, offset))
        assert server.saved_images(entry)
        assert len(standin.submits()) == expected
    # The same prompt again is answered from ComfyUI's output cache: still a success, no new job.
    standin.clear_requests()
    server.run(_with_seeds(prompt, 100_003))
    assert not standin.submits()
    assert "Event loop is closed" not in server.log()


def test_interrupt_cancels_the_fal_job_and_reports_interrupted(comfy, standin):
    server, _ = comfy
    prompt = _with_seeds(_load(API_WORKFLOWS[0]), 200_000)
    standin.clear_requests()
    standin.processing_delay = 60.0
    try:
        prompt_id = server.queue(prompt)
        deadline = time.monotonic() + 30
        while not standin.submits():  # interrupt only once the job exists at "fal"
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        time.sleep(1.0)
        interrupted_at = time.monotonic()
        server.post("/interrupt", {})
        entry = server.wait(prompt_id, timeout=30)
        took = time.monotonic() - interrupted_at
    finally:
        standin.processing_delay = 1.0
    names = [name for name, _ in messages(entry)]
    assert "execution_interrupted" in names, messages(entry)
    assert "execution_error" not in names, messages(entry)
    assert took < 10, f"the interrupt took {took:.1f} s to end the prompt"
    assert len(standin.cancels()) == 1, [r.path for r in standin.requests]
    cancelled_id = standin.cancels()[0].path.rstrip("/").split("/")[-2]  # .../requests/<id>/cancel
    job = standin.jobs.get(cancelled_id)
    assert job is not None and job.cancelled_at is not None, (cancelled_id, list(standin.jobs))
    assert job.arguments.get("seed") == prompt[_pack_node_ids(prompt)[0]]["inputs"]["seed"]
    # The next prompt runs normally after an interrupt.
    standin.clear_requests()
    assert server.saved_images(server.run(_with_seeds(prompt, 1)))


def test_a_second_start_neither_duplicates_nor_overwrites(comfy):
    """Restart on the same input folder: a user's edit of a sample stays, nothing is added."""
    server, _ = comfy
    samples = sample_files()
    edited = server.input_dir / samples[0].name
    edited.write_bytes(b"the user's own picture, same name")
    (server.input_dir / "holiday.png").write_bytes(b"the user's")
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
              for path in server.input_dir.iterdir()}
    server.stop()
    server.start()
    after = {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
             for path in server.input_dir.iterdir()}
    assert after == before
    # ...and the shipped workflows still queue (the edited file is the user's to keep).
    edited.write_bytes(samples[0].read_bytes())
    server.run(_with_seeds(_load(API_WORKFLOWS[0]), 300_000))
