"""The shipped example workflows: well-formed, in step with INPUT_TYPES, and runnable.

ComfyUI lists the UI-format files at the top of `workflows/` as templates; `workflows/api/`
holds the same graphs in API format (what `POST /prompt` takes). A widget added or reordered in
`nodes/node_inputs.py` without updating these files fails here, not in a user's ComfyUI.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from comfy_rules import load_image_like_comfyui, widget_slots
from fal_kontext import NODE_CLASS_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
API_DIR = WORKFLOWS / "api"
INPUTS = WORKFLOWS / "inputs"

# ComfyUI core nodes the examples may use, with their widget names in widgets_values order
# (LoadImage's second widget is the "upload" button, saved as the string "image").
CORE_WIDGETS: dict[str, tuple[str, ...]] = {
    "LoadImage": ("image", "upload"),
    "SaveImage": ("filename_prefix",),
    "PreviewImage": (),
    "Note": ("text",),
    "MarkdownNote": ("text",),
}
CORE_OUTPUTS: dict[str, tuple[str, ...]] = {"LoadImage": ("IMAGE", "MASK")}
CORE_SOCKETS: dict[str, dict[str, str]] = {"SaveImage": {"images": "IMAGE"},
                                           "PreviewImage": {"images": "IMAGE"}}
VIRTUAL_NODES = {"Note", "MarkdownNote"}  # UI only: the frontend leaves them out of API format
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}
SOCKET_TYPES = {"IMAGE", "MASK", "LATENT", "CONDITIONING", "MODEL", "CLIP", "VAE"}

UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted(API_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_inputs(node_class) -> dict[str, tuple[Any, dict[str, Any]]]:
    spec = node_class.INPUT_TYPES()
    return {**spec["required"], **spec.get("optional", {})}


def is_socket(kind: Any) -> bool:
    return isinstance(kind, str) and kind in SOCKET_TYPES


def expected_widgets(node_class) -> list[str]:
    """widgets_values layout: widget inputs, required then optional, a control value after seed."""
    return widget_slots(node_class.INPUT_TYPES())


def ui_widget_values(node: dict[str, Any]) -> dict[str, Any]:
    """A UI node's widgets_values by widget name (ours from INPUT_TYPES, core from CORE_WIDGETS)."""
    kind = node["type"]
    names = expected_widgets(NODE_CLASS_MAPPINGS[kind]) if kind in NODE_CLASS_MAPPINGS \
        else list(CORE_WIDGETS[kind])
    return dict(zip(names, node["widgets_values"]))


def check_value(name: str, kind: Any, options: dict[str, Any], value: Any) -> None:
    if isinstance(kind, list):
        assert value in kind, f"{name}={value!r} is not one of {kind}"
    elif kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{name} must be an int"
        assert options["min"] <= value <= options["max"], f"{name}={value} out of range"
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{name} not a number"
        assert options["min"] <= value <= options["max"], f"{name}={value} out of range"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), f"{name} must be a bool"
    elif kind == "STRING":
        assert isinstance(value, str), f"{name} must be a string"
    else:
        raise AssertionError(f"{name}: unexpected widget type {kind!r}")


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) \
        and isinstance(value[1], int)


def paired(path: Path) -> pytest.param:
    return pytest.param(path, id=path.stem)


# --- layout of the folder -------------------------------------------------------------------


def test_there_are_at_least_three_example_workflows():
    assert len(UI_FILES) >= 3


def test_top_level_holds_only_ui_workflows_and_thumbnails():
    for path in WORKFLOWS.iterdir():
        if path.is_dir():
            assert path.name in {"api", "inputs"}, f"unexpected folder workflows/{path.name}"
            continue
        assert path.suffix in {".json", ".jpg"}, f"workflows/{path.name}: ComfyUI lists only .json"
        if path.suffix == ".jpg":
            assert path.with_suffix(".json").is_file(), f"thumbnail {path.name} has no workflow"
        else:
            data = load(path)
            assert "nodes" in data and "links" in data, f"{path.name} is not UI format"


def test_api_files_live_in_api_folder_and_are_api_format():
    assert API_FILES
    for path in API_FILES:
        data = load(path)
        assert "nodes" not in data
        assert all("class_type" in node and "inputs" in node for node in data.values()), path.name


def test_every_ui_workflow_has_an_api_copy_of_the_same_name_and_back():
    assert [p.name for p in UI_FILES] == [p.name for p in API_FILES]


TEMPLATE_FAMILIES = {"Kontext - ": "FalKontext", "FLUX.2 - ": "FalFlux2"}


def test_template_names_are_readable_titles_that_sort_together():
    # Both frontends (1.27, 1.58) title a custom-node template with its file name and cut it
    # at about 32 characters; they read no title or description from the JSON.
    for path in UI_FILES:
        family = next((prefix for prefix in TEMPLATE_FAMILIES if path.stem.startswith(prefix)), None)
        assert family and len(path.stem) <= 32, path.stem
        node_types = {node["type"] for node in load(path)["nodes"] if node["type"] in NODE_CLASS_MAPPINGS}
        assert node_types and all(t.startswith(TEMPLATE_FAMILIES[family]) for t in node_types), \
            f"{path.stem}: the name's family is the node's"
        assert "_" not in path.stem, "the card shows the raw name: words, not snake_case"


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_every_template_has_its_thumbnail(path):
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name}: the Templates browser shows a placeholder"
    assert thumbnail.stat().st_size <= 80 * 1024
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and image.size == (512, 512)


# What both frontends show of the canvas in a 1600x1000 window, in canvas pixels: 1.27's canvas
# starts below its 70 px menu bar; 1.58's fills the window, under a tab bar and a floating
# toolbar (the top ~85 px); the sidebar (56 px) may sit over the canvas's left edge.
VIEW_LEFT, VIEW_TOP, VIEW_RIGHT, VIEW_BOTTOM = 60, 85, 1600 - 56, 1000 - 70
LOAD_IMAGE_MIN_HEIGHT = 326  # both frontends grow a Load Image to this once its picture shows


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_the_saved_view_shows_every_node_whole(path):
    """The Kontext node (its status line is its last row), the inputs and the result."""
    workflow = load(path)
    scale, (dx, dy) = workflow["extra"]["ds"]["scale"], workflow["extra"]["ds"]["offset"]
    for node in workflow["nodes"]:
        (x, y), (w, h) = node["pos"], node["size"]
        if node["type"] == "LoadImage":
            h = max(h, LOAD_IMAGE_MIN_HEIGHT)
        left, top = (x + dx) * scale, (y - 30 + dy) * scale  # 30: the title bar above pos
        right, bottom = (x + w + dx) * scale, (y + h + dy) * scale
        assert VIEW_LEFT <= left and VIEW_TOP <= top, f"node {node['id']} starts off screen"
        assert right <= VIEW_RIGHT and bottom <= VIEW_BOTTOM, f"node {node['id']} ends off screen"


# --- node types and inputs ------------------------------------------------------------------


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_ui_nodes_are_ours_or_allowed_core_nodes(path):
    for node in load(path)["nodes"]:
        assert node["type"] in NODE_CLASS_MAPPINGS or node["type"] in CORE_WIDGETS, node["type"]


@pytest.mark.parametrize("path", [paired(p) for p in API_FILES])
def test_api_inputs_of_our_nodes_match_input_types(path):
    workflow = load(path)
    for node_id, node in workflow.items():
        kind = node["class_type"]
        assert kind in NODE_CLASS_MAPPINGS or (kind in CORE_WIDGETS and kind not in VIRTUAL_NODES), kind
        if kind not in NODE_CLASS_MAPPINGS:
            continue
        spec = NODE_CLASS_MAPPINGS[kind].INPUT_TYPES()
        known = all_inputs(NODE_CLASS_MAPPINGS[kind])
        assert set(spec["required"]) <= set(node["inputs"]), f"node {node_id} misses required inputs"
        for name, value in node["inputs"].items():
            assert name in known, f"node {node_id}: {name} is not an input of {kind}"
            input_kind, options = known[name]
            if is_socket(input_kind):
                assert is_link(value), f"node {node_id}: socket {name} must be a link"
                assert value[0] in workflow, f"node {node_id}: {name} links to missing node"
            else:
                assert not is_link(value), f"node {node_id}: only IMAGE sockets take links"
                check_value(name, input_kind, options, value)
        assert not any("control_after_generate" in name for name in node["inputs"])


# Settings a template has a reason to change; everything else the pack decides (reference
# size, encoding, timeouts, caching) stays at the node's default, so a changed default reaches
# the templates people start from.
TEMPLATE_CHOICES = {"prompt", "model", "seed", "guidance_scale", "num_images", "aspect_ratio",
                    "output_format", "safety_tolerance"}


@pytest.mark.parametrize("path", [paired(p) for p in API_FILES])
def test_api_workflows_keep_the_pack_settings_at_their_defaults(path):
    for node_id, node in load(path).items():
        if node["class_type"] not in NODE_CLASS_MAPPINGS:
            continue
        for name, value in node["inputs"].items():
            kind, options = all_inputs(NODE_CLASS_MAPPINGS[node["class_type"]])[name]
            if name in TEMPLATE_CHOICES or is_socket(kind) or "default" not in options:
                continue
            assert value == options["default"], f"node {node_id}: {name} = {value!r}, " \
                                                f"the node's default is {options['default']!r}"


@pytest.mark.parametrize("path", [paired(p) for p in API_FILES])
def test_api_core_nodes_have_their_inputs(path):
    workflow = load(path)
    for node in workflow.values():
        kind = node["class_type"]
        if kind in NODE_CLASS_MAPPINGS:
            continue
        widgets = [w for w in CORE_WIDGETS[kind] if w != "upload"]
        assert sorted(node["inputs"]) == sorted([*widgets, *CORE_SOCKETS.get(kind, {})]), kind
        for socket in CORE_SOCKETS.get(kind, {}):
            assert is_link(node["inputs"][socket]) and node["inputs"][socket][0] in workflow


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_ui_widgets_values_line_up_with_input_types(path):
    for node in load(path)["nodes"]:
        kind = node["type"]
        if kind in NODE_CLASS_MAPPINGS:
            node_class = NODE_CLASS_MAPPINGS[kind]
            names = expected_widgets(node_class)
            assert len(node["widgets_values"]) == len(names), \
                f"node {node['id']}: {len(node['widgets_values'])} widget values, expected {names}"
            known = all_inputs(node_class)
            for name, value in ui_widget_values(node).items():
                if name.endswith(":control_after_generate"):
                    assert value in SEED_CONTROLS, f"node {node['id']}: {name}={value!r}"
                else:
                    check_value(name, *known[name], value)
        else:
            assert len(node["widgets_values"]) == len(CORE_WIDGETS[kind]), f"node {node['id']}"
            if kind == "LoadImage":
                assert node["widgets_values"][1] == "image"


def test_expected_widget_order_is_the_one_saved_workflows_depend_on():
    # Changing this list breaks every saved workflow: add new widgets at the end only.
    assert expected_widgets(NODE_CLASS_MAPPINGS["FalKontextMulti"]) == [
        "prompt", "model", "seed", "seed:control_after_generate", "guidance_scale", "num_images",
        "aspect_ratio", "output_format", "safety_tolerance", "enhance_prompt", "sync_mode",
        "reference_transport", "max_reference_megapixels", "timeout_seconds", "nsfw_policy",
        "use_result_cache", "reference_encoding"]


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_ui_and_api_copies_describe_the_same_graph(path):
    ui, api = load(path), load(API_DIR / path.name)
    executable = {str(n["id"]): n for n in ui["nodes"] if n["type"] not in VIRTUAL_NODES}
    assert set(executable) == set(api), "the same node ids, Notes aside"
    for node_id, node in executable.items():
        assert api[node_id]["class_type"] == node["type"]
        widgets = {name: value for name, value in ui_widget_values(node).items()
                   if not name.endswith(":control_after_generate") and name != "upload"}
        api_widgets = {name: value for name, value in api[node_id]["inputs"].items()
                       if not is_link(value)}
        assert widgets == api_widgets, f"node {node_id}: UI and API widget values differ"
    api_links = {(node_id, name, tuple(value)) for node_id, node in api.items()
                 for name, value in node["inputs"].items() if is_link(value)}
    ui_links = set()
    for node in executable.values():
        for socket in node["inputs"]:
            if socket["link"] is not None:
                link = next(l for l in ui["links"] if l[0] == socket["link"])
                ui_links.add((str(node["id"]), socket["name"], (str(link[1]), link[2])))
    assert ui_links == api_links


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_ui_links_are_consistent(path):
    ui = load(path)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"]), "node ids are unique"
    assert ui["version"] == 0.4 and ui["last_node_id"] == max(nodes)
    link_ids = [link[0] for link in ui["links"]]
    assert len(set(link_ids)) == len(link_ids) and ui["last_link_id"] == max(link_ids, default=0)
    for link_id, source, source_slot, target, target_slot, kind in ui["links"]:
        output = nodes[source]["outputs"][source_slot]
        socket = nodes[target]["inputs"][target_slot]
        assert output["type"] == socket["type"] == kind, f"link {link_id}"
        assert output["slot_index"] == source_slot and link_id in output["links"]
        assert socket["link"] == link_id
    # ...and nothing names a link that does not exist or points elsewhere.
    by_id = {link[0]: link for link in ui["links"]}
    for node in ui["nodes"]:
        for slot, output in enumerate(node["outputs"]):
            for link_id in output["links"] or []:
                assert by_id[link_id][1:3] == [node["id"], slot]
        for slot, socket in enumerate(node["inputs"]):
            if socket["link"] is not None:
                assert by_id[socket["link"]][3:5] == [node["id"], slot]
        if node["type"] in NODE_CLASS_MAPPINGS:
            node_class = NODE_CLASS_MAPPINGS[node["type"]]
            sockets = {name: kind for name, (kind, _) in all_inputs(node_class).items()
                       if is_socket(kind)}
            assert {s["name"]: s["type"] for s in node["inputs"]} == sockets
            assert [o["type"] for o in node["outputs"]] == list(node_class.RETURN_TYPES)
            assert [o["name"] for o in node["outputs"]] == list(node_class.RETURN_NAMES)
        elif node["type"] in CORE_OUTPUTS:
            assert tuple(o["type"] for o in node["outputs"]) == CORE_OUTPUTS[node["type"]]


def note_prices(node_type: str) -> tuple[str, ...]:
    """The prices a note must state for a node type, from the models tables."""
    from fal_kontext.kontext import flux2_models as f
    if node_type == "FalFlux2Edit":
        return tuple(f"${price:g}" for model in f.FLUX2_MODELS.values()
                     for price in (model.usd_first_megapixel, model.usd_further_megapixel))
    return tuple(f"${model.usd_per_image:.2f}" for model in NODE_CLASS_MAPPINGS[node_type].MODELS.values())


@pytest.mark.parametrize("path", [paired(p) for p in UI_FILES])
def test_every_workflow_explains_itself_in_a_note(path):
    workflow = load(path)
    notes = [n for n in workflow["nodes"] if n["type"] in VIRTUAL_NODES]
    assert notes
    text = " ".join(n["widgets_values"][0] for n in notes)
    prices = [price for node in workflow["nodes"] if node["type"] in NODE_CLASS_MAPPINGS
              for price in note_prices(node["type"])]
    for needed in ("FAL_KEY", "config.json", "prompt", *prices):
        assert needed in text, f"the note should mention {needed}"
    assert "fk-" not in text, "notes describe where the key goes, they never hold one"


# --- sample inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [paired(p) for p in API_FILES])
def test_load_image_files_ship_in_workflows_inputs(path):
    from fal_kontext.nodes.sample_inputs import sample_files

    installed = {sample.name for sample in sample_files()}  # what the pack copies on load
    for node in load(path).values():
        if node["class_type"] == "LoadImage":
            image = INPUTS / node["inputs"]["image"]
            assert image.is_file(), f"{image.name} is missing from workflows/inputs/"
            assert image.name.startswith("kontext_"), "prefixed so it cannot clash in ComfyUI/input"
            assert image.name in installed


def test_sample_images_are_small_pngs():
    samples = sorted(INPUTS.glob("*.png"))
    assert samples
    for sample in samples:
        assert sample.stat().st_size <= 64 * 1024, sample.name
        with Image.open(sample) as image:
            assert image.format == "PNG" and max(image.size) <= 1024


# --- running them ---------------------------------------------------------------------------


def resolve_inputs(workflow: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The node's inputs with links replaced by the LoadImage tensors; also the frame count."""
    inputs, frames = {}, 0
    for name, value in node["inputs"].items():
        if is_link(value):
            source = workflow[value[0]]
            assert source["class_type"] == "LoadImage" and value[1] == 0, "examples feed LoadImage"
            tensor = load_image_like_comfyui(INPUTS / source["inputs"]["image"])
            inputs[name], frames = tensor, frames + tensor.shape[0]
        else:
            inputs[name] = value
    return inputs, frames


PACK_NODES = [pytest.param(path, node_id, id=f"{path.stem}#{node_id}")
                 for path in API_FILES for node_id, node in load(path).items()
                 if node["class_type"] in NODE_CLASS_MAPPINGS]


@pytest.mark.anyio
@pytest.mark.parametrize("path,node_id", PACK_NODES)
async def test_pack_nodes_run_against_the_stand_in_with_the_sample_images(fal_env, path, node_id):
    workflow = load(path)
    node = workflow[node_id]
    inputs, frames = resolve_inputs(workflow, node)
    images, seed, info = await NODE_CLASS_MAPPINGS[node["class_type"]]().edit(
        **inputs, unique_id=node_id)
    assert images.dtype == torch.float32 and images.ndim == 4 and images.shape[-1] == 3
    assert images.shape[0] == node["inputs"].get("num_images", 1)
    assert seed == node["inputs"]["seed"]
    submits = fal_env.submits()
    assert len(submits) == 1
    body = submits[0].json()
    assert len(body["image_urls"]) == frames
    assert body["prompt"] == node["inputs"]["prompt"]
    bill, = fal_env.billed_jobs()
    assert json.loads(info)["estimated_cost_usd"] == pytest.approx(bill.usd), \
        "the price the node states is what fal bills"
