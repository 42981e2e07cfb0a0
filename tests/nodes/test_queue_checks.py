"""What ComfyUI refuses when a prompt is queued (VALIDATE_INPUTS), before anything runs.

ComfyUI calls a V1 node's VALIDATE_INPUTS with only the inputs its signature names, passes None
for a named input that is fed by a link, reports a returned string once per named input, and
skips its own min/max/choice checks for the named ones (ComfyUI's execution.py
`validate_inputs`). tests/comfyui queues such prompts in a real ComfyUI.
"""
from __future__ import annotations

import inspect

import pytest

from fal_kontext.kontext import models as m
from fal_kontext.kontext import parameters as p
from fal_kontext.kontext.errors import InvalidInputError
from fal_kontext.nodes.kontext_nodes import NODE_CLASS_MAPPINGS
from fal_kontext.nodes.queue_checks import check_when_queued
from node_calls import call_node, solid

NODES = list(NODE_CLASS_MAPPINGS.values())


@pytest.mark.parametrize("node_class", NODES)
@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_an_empty_prompt_is_refused_in_one_line_that_names_it(node_class, prompt):
    answer = node_class.VALIDATE_INPUTS(prompt=prompt)
    assert isinstance(answer, str) and "\n" not in answer
    assert answer.startswith("prompt is empty: write the edit instruction")


@pytest.mark.parametrize("node_class", NODES)
def test_a_prompt_over_the_limit_is_refused(node_class):
    answer = node_class.VALIDATE_INPUTS(prompt="x" * (m.PROMPT_MAX_CHARS + 1))
    assert answer == f"prompt is {m.PROMPT_MAX_CHARS + 1:,} characters long; the limit is " \
                     f"{m.PROMPT_MAX_CHARS:,}"


@pytest.mark.parametrize("node_class", NODES)
def test_a_written_prompt_or_a_linked_one_passes(node_class):
    assert node_class.VALIDATE_INPUTS(prompt="put the hat on the dog") is True
    # A prompt fed by a link (a text node) is not known at queue time: ComfyUI passes None.
    assert node_class.VALIDATE_INPUTS(prompt=None) is True


@pytest.mark.parametrize("node_class", NODES)
def test_it_names_only_the_prompt(node_class):
    # Each input named here gets the refusal repeated under it, and loses ComfyUI's own range
    # and choice checks; ComfyUI reads the names from the signature.
    assert inspect.getfullargspec(node_class.VALIDATE_INPUTS).args == ["cls", "prompt"]


@pytest.mark.anyio
async def test_queue_time_and_run_time_refuse_with_the_same_words(fal_env):
    node_class = NODE_CLASS_MAPPINGS["FalKontextMulti"]
    with pytest.raises(InvalidInputError) as caught:
        await call_node(node_class, prompt=" ", images=solid((1.0, 0.0, 0.0)))
    assert str(caught.value) == node_class.VALIDATE_INPUTS(prompt=" ")
    assert not fal_env.requests


def test_the_queue_time_check_is_the_parameter_tables():
    for name, value in [("num_images", 9), ("guidance_scale", float("nan")), ("model", "ultra"),
                        ("seed", -1), ("enhance_prompt", "yes")]:
        with pytest.raises(InvalidInputError) as caught:
            p.check(name, value)
        assert check_when_queued({name: value}) == str(caught.value)
        assert str(caught.value).startswith(f"{name} ")
    assert check_when_queued({"num_images": 2, "prompt": None, "model": "max"}) is True
    assert check_when_queued({"num_images": 2, "prompt": ""}).startswith("prompt is empty")


@pytest.mark.parametrize("node_class", NODES)
def test_comfyui_checks_every_other_widget_against_the_tables_ranges_and_choices(node_class):
    # What ComfyUI itself refuses at queue time for the widgets VALIDATE_INPUTS does not name.
    spec = node_class.INPUT_TYPES()
    widgets = {**spec["required"], **spec.get("optional", {})}
    for parameter in p.PARAMETERS:
        kind, options = widgets[parameter.name]
        if parameter.kind in (p.INT, p.FLOAT):
            assert (options["min"], options["max"]) == (parameter.low, parameter.high)
        elif parameter.kind == p.CHOICE:
            assert tuple(kind) == parameter.choices


@pytest.mark.parametrize("node_class", NODES)
def test_too_many_references_cannot_be_known_at_queue_time(node_class):
    # At queue time ComfyUI tells only which reference inputs are linked, not how many frames
    # they carry; with no more inputs than the endpoint takes references, linked inputs alone
    # never exceed the limit, so the count is checked when the node runs. A node with more
    # inputs than its limit should refuse that at queue time.
    for model in node_class.MODELS.values():
        limit = m.MAX_REFERENCES if model.takes_many_references else 1
        assert len(node_class.REFERENCE_INPUTS) <= limit


def test_the_flux2_node_refuses_an_empty_prompt_when_queued_too():
    from fal_kontext.nodes.flux2_nodes import FalFlux2Edit
    assert FalFlux2Edit.VALIDATE_INPUTS(prompt="put the duck on the shirt") is True
    refusal = FalFlux2Edit.VALIDATE_INPUTS(prompt="   ")
    assert isinstance(refusal, str) and refusal.startswith("prompt is empty")


@pytest.mark.parametrize("request_id, refused", [(None, False), ("764cabcf-b745-4b3e-ae38-1200304cf45b", False),
                                                 ("", True), ("id with spaces", True)])
def test_the_result_by_id_node_refuses_an_unusable_id_when_queued(request_id, refused):
    from fal_kontext.nodes.result_by_request_id import FalResultByRequestId
    answer = FalResultByRequestId.VALIDATE_INPUTS(request_id=request_id)
    if refused:
        assert isinstance(answer, str) and answer.startswith("request_id ")
    else:
        assert answer is True
