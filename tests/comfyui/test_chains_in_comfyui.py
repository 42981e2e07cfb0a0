"""Chained edits and results fetched by their id, inside a real ComfyUI.

- Two Kontext nodes in a row: the second node's reference is the first node's result, and it
  goes to fal as the URL fal served that result from (no upload for it).
- A prompt whose ComfyUI is killed after its submit left but before fal's answer arrived: the
  next start logs the way to get the result, and a second prompt with the 'fal Result by
  Request ID' node gets the image that was paid for, with no new submit.

Skipped unless COMFYUI_DIR is set (see test_in_real_comfyui.py). Each test starts its own ComfyUI.
"""
from __future__ import annotations

import io
import json
import time
import urllib.request

import numpy as np
from PIL import Image

from comfyui_process import DUCKLING_API, DUCKLING_KONTEXT_NODE, NEEDS_COMFYUI

DUCKLING, KONTEXT_NODE = DUCKLING_API, DUCKLING_KONTEXT_NODE
PROCESSING_DELAY = 0.5  # seconds per job at the stand-in (tests/comfyui/conftest.py)
ENDPOINT = "fal-ai/flux-pro/kontext/multi"

pytestmark = NEEDS_COMFYUI


def duckling_prompt(seed: int) -> dict:
    prompt = json.loads(DUCKLING.read_text())
    prompt[KONTEXT_NODE]["inputs"]["seed"] = seed
    return prompt


def served_file(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def test_a_result_fed_into_the_next_node_goes_as_the_url_fal_served_it_from(comfy, standin):
    prompt = duckling_prompt(700_001)
    prompt["6"] = {"class_type": "FalKontextMulti", "inputs": {
        **prompt[KONTEXT_NODE]["inputs"], "prompt": "Now make it a night scene.",
        "images": [KONTEXT_NODE, 0]}}
    del prompt["6"]["inputs"]["image_2"]
    prompt["7"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "kontext/night",
                                                         "images": ["6", 0]}}
    entry = comfy.run(prompt)
    assert len(comfy.saved_images(entry)) == 2
    first, second = (request.json() for request in standin.submits())
    assert len(first["image_urls"]) == 2, "the duckling node ran first"
    (first_job,) = [job for job in standin.jobs.values() if len(job.arguments["image_urls"]) == 2]
    (result_url,) = [image["url"] for image in first_job.result["images"]]
    assert second["image_urls"] == [result_url]
    assert standin.count("upload") == 2, "the two photos of step 1 only: no upload for step 2"
    assert len(standin.billed_request_ids()) == 2


def test_a_submit_whose_answer_never_arrived_is_fetched_by_its_id_in_a_second_prompt(comfy,
                                                                                    standin):
    standin.faults.add("submit", delay=2.0)  # fal takes the job; its answer comes too late
    comfy.queue(duckling_prompt(800_001))
    deadline = time.monotonic() + 60
    while not standin.count("submit"):
        assert time.monotonic() < deadline, comfy.log_tail()
        time.sleep(0.05)
    comfy.process.kill()  # kill -9 while the submit waits for fal's answer
    comfy.process.wait(10)
    while not standin.jobs:  # fal creates the job anyway: it runs and bills
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (request_id,) = standin.jobs  # what the user finds in fal's dashboard
    comfy.start()  # the same user folder: the job ledger has the submit, without an id
    assert "'fal Result by Request ID' node" in comfy.log(), comfy.log_tail()
    entry = comfy.run({
        "1": {"class_type": "FalResultByRequestId",
              "inputs": {"request_id": request_id, "endpoint": ENDPOINT, "nsfw_policy": "drop"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "kontext/fetched",
                                                    "images": ["1", 0]}}})
    (saved,) = comfy.saved_images(entry)
    (result_url,) = [image["url"] for image in standin.jobs[request_id].result["images"]]
    assert np.array_equal(pixels(saved.read_bytes()), pixels(served_file(result_url)))
    assert standin.count("submit") == 1 and not standin.cancels()
    assert standin.billed_request_ids() == [request_id], "paid once, and fetched for free"
