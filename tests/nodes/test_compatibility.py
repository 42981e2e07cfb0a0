"""Retired input names: a renamed or removed input stays accepted, is mapped, and says so once.

Nothing is retired today, so the table is filled here with two made-up entries: `encoding`,
renamed to `reference_encoding`, and `fast_upload`, removed.
"""
from __future__ import annotations

import logging

import pytest
import torch

from comfy_rules import node_arguments, validate_prompt, widget_slots
from fal_kontext import NODE_CLASS_MAPPINGS
from fal_kontext.kontext.errors import InvalidInputError
from fal_kontext.nodes import compatibility
from fal_kontext.nodes.compatibility import RETIRED_INPUT_TYPE, RetiredInput
from fal_kontext.nodes.kontext_nodes import FalKontextEdit, FalKontextMulti
from node_calls import widget_defaults

RENAMED = RetiredInput("FalKontextMulti", "encoding", retired_in="0.3.0", accepted_until="0.4.0",
                       replaced_by="reference_encoding", convert=str.lower)
REMOVED = RetiredInput("FalKontextMulti", "fast_upload", retired_in="0.3.0",
                       accepted_until="0.4.0", replaced_by=None)
LOGGER = compatibility.logger.name
pytestmark = pytest.mark.anyio


def photo(seed: int = 5) -> torch.Tensor:
    """Noise has too many colours to count as a graphic: `auto` sends it as JPEG."""
    return torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(seed))


async def call_node(node_class, **inputs):
    """Called as ComfyUI calls it for an API prompt saved before `reference_encoding` existed
    (the UI would send that widget's value too, and it would win)."""
    saved = {name: value for name, value in widget_defaults(node_class).items()
             if name != "reference_encoding"}
    return await node_class().edit(**{**saved, "unique_id": "7", **inputs})


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def table_problems(entries) -> list[str]:
    """What is wrong with a retired-inputs table, given today's nodes."""
    problems = []
    for entry in entries:
        node = NODE_CLASS_MAPPINGS.get(entry.node_id)
        if node is None:
            problems.append(f"{entry.name}: no node {entry.node_id}")
            continue
        spec = node.INPUT_TYPES()
        if entry.name in spec["required"] or entry.name in spec["optional"]:
            problems.append(f"{entry.name} is still an input of {entry.node_id}")
        if entry.replaced_by is not None and entry.replaced_by not in spec["optional"]:
            # A prompt saved with the old name lacks the new one: required, ComfyUI refuses it.
            problems.append(f"{entry.name}: '{entry.replaced_by}' must be an optional input")
        if _version(entry.accepted_until) <= _version(entry.retired_in):
            problems.append(f"{entry.name}: accepted for less than one release")
    names = [(entry.node_id, entry.name) for entry in entries]
    if len(set(names)) != len(names):
        problems.append("an input is listed twice")
    return problems


@pytest.fixture
def retired(monkeypatch):
    monkeypatch.setattr(compatibility, "RETIRED_INPUTS", (RENAMED, REMOVED))


def test_the_real_table_is_sound():
    assert table_problems(compatibility.RETIRED_INPUTS) == []


def test_the_table_check_catches_bad_entries(retired):
    assert table_problems((RENAMED, REMOVED)) == []
    bad = (RetiredInput("FalKontextMulti", "seed", "0.3.0", "0.4.0", None),
           RetiredInput("FalKontextMulti", "cfg", "0.3.0", "0.4.0", "guidance_scale"),
           RetiredInput("FalKontextMulti", "x", "0.3.0", "0.3.0", None))
    assert len(table_problems(bad)) == 3


def test_node_ids_are_the_class_names_the_table_is_keyed_by():
    assert all(node_class.__name__ == node_id for node_id, node_class in NODE_CLASS_MAPPINGS.items())


def test_retired_names_are_hidden_inputs_and_move_no_widget(monkeypatch):
    before = FalKontextMulti.INPUT_TYPES()
    monkeypatch.setattr(compatibility, "RETIRED_INPUTS", (RENAMED, REMOVED))
    spec = FalKontextMulti.INPUT_TYPES()
    assert spec["hidden"] == {"unique_id": "UNIQUE_ID", "encoding": RETIRED_INPUT_TYPE,
                              "fast_upload": RETIRED_INPUT_TYPE}
    assert {section: list(spec[section]) for section in ("required", "optional")} == \
        {section: list(before[section]) for section in ("required", "optional")}
    assert widget_slots(spec) == widget_slots(before)
    assert FalKontextEdit.INPUT_TYPES()["hidden"] == {"unique_id": "UNIQUE_ID"}, "per node"


def _prompt_with(**inputs) -> dict:
    node = {name: value for name, value in {
        "prompt": "p", "model": "pro", "seed": 1, "guidance_scale": 3.5, "num_images": 1,
        "aspect_ratio": "auto", "output_format": "jpeg", "safety_tolerance": "2",
        "enhance_prompt": False, "sync_mode": False, "reference_transport": "data_uri",
        "max_reference_megapixels": 1.1, "timeout_seconds": 600, "nsfw_policy": "drop",
        "use_result_cache": False, "images": ["1", 0]}.items()}
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "2": {"class_type": "FalKontextMulti", "inputs": {**node, **inputs}}}


def test_comfyui_accepts_a_prompt_with_retired_names_and_hands_them_to_the_node(retired):
    prompt = _prompt_with(encoding="LOSSLESS", fast_upload=True)
    assert validate_prompt(prompt, NODE_CLASS_MAPPINGS) == []
    arguments = node_arguments(FalKontextMulti, "2", prompt["2"]["inputs"], lambda link: photo())
    assert arguments["encoding"] == "LOSSLESS" and arguments["fast_upload"] is True


def test_without_the_table_entry_comfyui_drops_the_old_name_silently():
    """Why retired names are declared: otherwise the saved value never reaches the node."""
    prompt = _prompt_with(encoding="lossless")
    assert validate_prompt(prompt, NODE_CLASS_MAPPINGS) == []
    arguments = node_arguments(FalKontextMulti, "2", prompt["2"]["inputs"], lambda link: photo())
    assert "encoding" not in arguments


def _sent_format(standin) -> str:
    (url,) = standin.submits()[-1].json()["image_urls"]
    return url.split(";")[0]



async def test_a_renamed_input_is_mapped_with_one_warning_line(fal_env, retired, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await call_node(FalKontextMulti, prompt="p", images=photo(), reference_transport="data_uri",
                    encoding="AUTO")
    assert _sent_format(fal_env) == "data:image/jpeg", "the old name's value was used"
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert record.getMessage().startswith("[FalKontextMulti #7] ")
    assert "'encoding' was renamed to 'reference_encoding' in 0.3.0 (accepted until 0.4.0)" \
        in record.getMessage()


async def test_a_prompt_saved_before_an_input_existed_gets_what_that_release_did(fal_env):
    # 0.1.0 sent every reference as lossless PNG; `auto` (the widget's default) would send JPEG.
    await call_node(FalKontextMulti, prompt="p", images=photo(), reference_transport="data_uri")
    assert _sent_format(fal_env) == "data:image/png"


async def test_the_new_name_wins_when_both_are_given(fal_env, retired, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await call_node(FalKontextMulti, prompt="p", images=photo(), reference_transport="data_uri",
                    encoding="lossless", reference_encoding="auto")
    assert _sent_format(fal_env) == "data:image/jpeg"
    assert "'reference_encoding' is also set and wins" in caplog.records[-1].getMessage()


async def test_several_retired_names_make_one_line(fal_env, retired, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await call_node(FalKontextMulti, prompt="p", images=photo(), encoding="lossless",
                    fast_upload=True)
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert "'fast_upload' was removed in 0.3.0 and is ignored" in record.getMessage()
    assert "'encoding' was renamed" in record.getMessage()


async def test_no_warning_without_retired_names(fal_env, retired, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await call_node(FalKontextMulti, prompt="p", images=photo())
    assert not [r for r in caplog.records if r.name == LOGGER]


async def test_a_value_that_cannot_be_carried_over_names_the_old_input(fal_env, retired):
    with pytest.raises(InvalidInputError) as caught:
        await call_node(FalKontextMulti, prompt="p", images=photo(), encoding=7)
    assert "encoding" in str(caught.value) and "reference_encoding" in str(caught.value)
    assert not fal_env.submits()


async def test_a_carried_over_value_is_still_checked_under_its_new_name(fal_env, retired):
    with pytest.raises(InvalidInputError, match="reference_encoding"):
        await call_node(FalKontextMulti, prompt="p", images=photo(), encoding="webp")
    assert not fal_env.submits()
