"""Workflows saved with the first release (0.1.0) keep working: the files it shipped, unchanged.

`fixtures/0.1.0/` holds the UI and API workflows 0.1.0 shipped, byte for byte (SOURCE.json says
from where). API prompts must pass ComfyUI's `/prompt` checks against today's INPUT_TYPES and run
on the stand-in; UI workflows' positional `widgets_values` must land on today's widgets with the
values they had.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from comfy_rules import (CONTROL_SUFFIX, is_link, load_image_like_comfyui, node_arguments,
                         socket_names, ui_to_prompt, validate_prompt, widget_slots)
from fal_kontext import NODE_CLASS_MAPPINGS
from fal_kontext.kontext import parameters as p
from fal_kontext.nodes import compatibility
from fal_kontext.version import pack_version

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "0.1.0"
SOURCE = json.loads((FIXTURES / "SOURCE.json").read_text(encoding="utf-8"))
API_FILES = sorted((FIXTURES / "api").glob("*.json"))
UI_FILES = sorted((FIXTURES / "ui").glob("*.json"))
SAMPLE_INPUTS = ROOT / "workflows" / "inputs"  # what the pack copies into ComfyUI's input folder
CORE_WIDGETS = {"LoadImage": ("image", "upload"), "SaveImage": ("filename_prefix",)}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def kontext_nodes(prompt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(node_id, node) for node_id, node in prompt.items()
            if node["class_type"] in NODE_CLASS_MAPPINGS]


def by_stem(paths: list[Path]) -> list:
    return [pytest.param(path, id=path.stem) for path in paths]


# --- the fixtures are what 0.1.0 shipped -----------------------------------------------------


def test_the_fixtures_are_the_three_ui_and_three_api_workflows_0_1_0_shipped():
    assert sorted(SOURCE["files"]) == sorted(
        path.relative_to(FIXTURES).as_posix() for path in [*API_FILES, *UI_FILES])
    assert len(API_FILES) == len(UI_FILES) == 3
    assert [path.name for path in API_FILES] == [path.name for path in UI_FILES]


@pytest.mark.parametrize("name", sorted(SOURCE["files"]))
def test_each_fixture_is_byte_for_byte_the_file_in_git_history(name):
    data = (FIXTURES / name).read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id
    assert blob == SOURCE["files"][name]["git_blob"], f"{name} was edited; it must stay as shipped"


def test_the_recorded_object_ids_are_those_of_the_release_commit():
    spec = [f"{SOURCE['commit']}:{entry['from']}" for entry in SOURCE["files"].values()]
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    answer = subprocess.run(["git", "rev-parse", *spec], cwd=ROOT, capture_output=True, text=True)
    if answer.returncode != 0:
        pytest.skip(f"the release commit is not in this clone (shallow?): {answer.stderr.strip()}")
    assert answer.stdout.split() == [entry["git_blob"] for entry in SOURCE["files"].values()]


def test_the_old_prompts_lack_what_0_2_0_added():
    """Why these fixtures matter: 0.1.0 had no reference_encoding; ComfyUI fills in nothing."""
    for path in API_FILES:
        for _, node in kontext_nodes(load(path)):
            assert "reference_encoding" not in node["inputs"]


# --- API format: ComfyUI's /prompt checks, then a run on the stand-in ------------------------


@pytest.mark.parametrize("path", by_stem(API_FILES))
def test_old_api_prompt_passes_the_prompt_checks(path):
    assert validate_prompt(load(path), NODE_CLASS_MAPPINGS) == []


def test_the_checks_refuse_the_old_prompts_if_a_later_input_were_required(monkeypatch):
    """The bug of issue 20, reproduced: reference_encoding required -> ComfyUI's refusal."""
    for node_id in ("FalKontextMulti", "FalKontextEdit"):
        monkeypatch.setitem(compatibility.RELEASED_WIDGETS, node_id,
                            (*compatibility.RELEASED_WIDGETS[node_id], "reference_encoding"))
    errors = validate_prompt(load(API_FILES[0]), NODE_CLASS_MAPPINGS)
    assert [(error.type, error.input_name) for error in errors] == [
        ("required_input_missing", "reference_encoding")]


@pytest.mark.parametrize("change,error_type", [
    ({"model": "ultra"}, "value_not_in_list"),
    ({"num_images": 5}, "value_bigger_than_max"),
    ({"guidance_scale": 0.5}, "value_smaller_than_min"),
    ({"seed": "forty-two"}, "invalid_input_type"),
    ({"images": ["99", 0]}, "bad_linked_input"),
    ({"images": ["2", 1]}, "return_type_mismatch"),  # LoadImage's MASK into an IMAGE socket
])
def test_the_checks_catch_what_comfyui_refuses(change, error_type):
    prompt = load(API_FILES[0])  # four variants: LoadImage 2 -> FalKontextMulti 3 -> SaveImage 4
    node_id, node = kontext_nodes(prompt)[0]
    name, value = next(iter(change.items()))
    node["inputs"][name] = value
    errors = validate_prompt(prompt, NODE_CLASS_MAPPINGS)
    assert [(error.node_id, error.type, error.input_name) for error in errors] == [
        (node_id, error_type, name)], errors


def _resolve(prompt: dict[str, Any]):
    frames = []

    def resolve(link: list) -> torch.Tensor:
        source = prompt[link[0]]
        assert source["class_type"] == "LoadImage" and link[1] == 0
        tensor = load_image_like_comfyui(SAMPLE_INPUTS / source["inputs"]["image"])
        frames.append(tuple(tensor.shape[1:3]))
        return tensor
    return resolve, frames


API_NODES = [pytest.param(path, node_id, id=f"{path.stem}#{node_id}")
             for path in API_FILES for node_id, _ in kontext_nodes(load(path))]


@pytest.mark.anyio
@pytest.mark.parametrize("path,node_id", API_NODES)
async def test_old_api_prompt_runs_end_to_end_on_the_stand_in(fal_env, path, node_id):
    prompt = load(path)
    saved = prompt[node_id]["inputs"]
    node_class = NODE_CLASS_MAPPINGS[prompt[node_id]["class_type"]]
    resolve, reference_sizes = _resolve(prompt)
    arguments = node_arguments(node_class, node_id, saved, resolve)  # what ComfyUI hands over
    assert "reference_encoding" not in arguments
    images, seed, info = await node_class().edit(**arguments)

    assert images.dtype == torch.float32 and images.shape[0] == saved["num_images"]
    assert seed == saved["seed"]
    submits = fal_env.submits()
    assert len(submits) == 1
    body = submits[0].json()
    for name in p.FAL_FIELDS:  # every field the old prompt set reaches fal as it was saved
        parameter = p.BY_NAME[name]
        if parameter.omitted(saved[name]):
            assert name not in body
        else:
            assert body[name] == parameter.check(saved[name]), name
    job = next(iter(fal_env.jobs.values()))
    assert [tuple(size) for size in job.reference_sizes] == [(w, h) for h, w in reference_sizes]
    assert job.endpoint_id == node_class.MODELS[saved["model"]].endpoint_id
    details = json.loads(info)
    assert details["pack_version"] == pack_version()
    assert details["estimated_cost_usd"] == pytest.approx(
        node_class.MODELS[saved["model"]].usd_per_image * saved["num_images"])


# --- UI format: widget values by position ----------------------------------------------------


UI_NODES = [pytest.param(path, node["id"], id=f"{path.stem}#{node['id']}")
            for path in UI_FILES for node in load(path)["nodes"] if node["type"] in NODE_CLASS_MAPPINGS]


def _ui_node(path: Path, node_id: int) -> dict[str, Any]:
    return next(node for node in load(path)["nodes"] if node["id"] == node_id)


@pytest.mark.parametrize("path,node_id", UI_NODES)
def test_old_widget_values_land_on_the_widgets_they_were_saved_from(path, node_id):
    """The 0.1.0 API copy of the same graph says, by name, which value each widget had."""
    node = _ui_node(path, node_id)
    slots = widget_slots(NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES())
    assert len(node["widgets_values"]) <= len(slots), "every saved value has a widget"
    landed = dict(zip(slots, node["widgets_values"]))
    had = {name: value for name, value in load(FIXTURES / "api" / path.name)[str(node_id)]["inputs"].items()
           if not is_link(value)}
    assert {name: value for name, value in landed.items() if not name.endswith(CONTROL_SUFFIX)} == had
    assert landed["seed" + CONTROL_SUFFIX] == "fixed"


@pytest.mark.parametrize("path,node_id", UI_NODES)
def test_old_sockets_and_outputs_keep_their_slots(path, node_id):
    node = _ui_node(path, node_id)
    node_class = NODE_CLASS_MAPPINGS[node["type"]]
    sockets = socket_names(node_class.INPUT_TYPES())
    assert [socket["name"] for socket in node["inputs"]] == sockets[:len(node["inputs"])]
    outputs = list(zip(node_class.RETURN_NAMES, node_class.RETURN_TYPES))
    assert [(output["name"], output["type"]) for output in node["outputs"]] == outputs[:len(node["outputs"])]
    for link_id, *_, target, slot, kind in load(path)["links"]:
        if target == node_id:
            assert sockets[slot] == node["inputs"][slot]["name"] and kind == "IMAGE", link_id


@pytest.mark.parametrize("path", by_stem(UI_FILES))
def test_old_ui_workflow_queues_as_a_valid_prompt_with_new_widgets_at_their_defaults(path):
    prompt = ui_to_prompt(load(path), NODE_CLASS_MAPPINGS, CORE_WIDGETS)
    assert validate_prompt(prompt, NODE_CLASS_MAPPINGS) == []
    for _, node in kontext_nodes(prompt):
        assert node["inputs"]["reference_encoding"] == p.BY_NAME["reference_encoding"].default
