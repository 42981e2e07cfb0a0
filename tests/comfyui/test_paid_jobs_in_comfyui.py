"""Paid jobs inside a real ComfyUI, with the result cache on and off: identical nodes in one
prompt pay once, and a ComfyUI killed mid-job costs nothing more when the prompt is queued again
after a restart. The cache switch only decides whether finished results are re-used.

Skipped unless COMFYUI_DIR is set (see test_in_real_comfyui.py). Each test starts its own ComfyUI,
because killing it is part of the scenario.
"""
from __future__ import annotations

import json
import time

import pytest
from comfyui_process import DUCKLING_API, DUCKLING_KONTEXT_NODE, NEEDS_COMFYUI

DUCKLING, KONTEXT_NODE = DUCKLING_API, DUCKLING_KONTEXT_NODE
PROCESSING_DELAY = 3.0  # seconds per job at the stand-in (tests/comfyui/conftest.py)

pytestmark = NEEDS_COMFYUI


def duckling_prompt(seed: int, use_result_cache: bool, copies: int = 1) -> dict:
    """The shipped duckling workflow, its Kontext node (and Save Image) repeated `copies` times."""
    prompt = json.loads(DUCKLING.read_text())
    node = prompt[KONTEXT_NODE]
    node["inputs"].update(seed=seed, use_result_cache=use_result_cache)
    for copy in range(1, copies):
        prompt[f"{KONTEXT_NODE}{copy}"] = json.loads(json.dumps(node))
        prompt[f"save{copy}"] = {"class_type": "SaveImage", "inputs": {
            "filename_prefix": f"kontext/copy{copy}", "images": [f"{KONTEXT_NODE}{copy}", 0]}}
    return prompt



@pytest.mark.parametrize("use_result_cache", [True, False], ids=["cache on", "cache off"])
def test_identical_nodes_in_one_prompt_pay_once(comfy, standin, use_result_cache):
    entry = comfy.run(duckling_prompt(500_001, use_result_cache, copies=2))
    assert len(comfy.saved_images(entry)) == 2
    assert len(standin.submits()) == 1, [r.path for r in standin.requests]
    assert standin.billed_request_ids() == list(standin.jobs)


@pytest.mark.parametrize("use_result_cache", [True, False], ids=["cache on", "cache off"])
def test_comfyui_killed_mid_job_then_the_same_prompt_pays_nothing_more(comfy, standin,
                                                                       use_result_cache):
    prompt = duckling_prompt(600_001, use_result_cache)
    comfy.queue(prompt)
    deadline = time.monotonic() + 60
    while not standin.submits():
        assert time.monotonic() < deadline, comfy.log_tail()
        time.sleep(0.1)
    time.sleep(0.5)  # fal has answered: the job ledger names the request
    comfy.process.kill()  # kill -9: no handler runs, nothing is cancelled
    comfy.process.wait(10)
    (job,) = standin.jobs
    comfy.start()  # the same user folder: the same job ledger
    entry = comfy.run(prompt)
    assert comfy.saved_images(entry)
    assert len(standin.submits()) == 1, "the restarted ComfyUI paid again"
    assert standin.billed_request_ids() == [job]
    assert not standin.cancels()
