"""The 'fal Result by Request ID' node: the images of a request fal already has, fetched by its
id (a run killed before fal named its job, a job started elsewhere). It declares its inputs and
delegates to `kontext/collect.py`; it costs nothing and never submits or cancels a job."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from ..kontext import parameters as p
from ..kontext.collect import (ENDPOINT_INPUT, REQUEST_ID_INPUT, checked_request_id,
                               collect_request, pack_endpoints)
from ..kontext.errors import InvalidInputError
from ..kontext.pipeline import EditResult
from ..kontext.progress import ProgressReporter
from ..version import pack_version
from .client_pool import shared_client
from .comfy_paths import node_job_store
from .image_tensors import stack_results
from .node_inputs import widget
from .node_runs import ImageSeedInfoNode, NodeRun

CATEGORY = "fal/Kontext"


class FalResultByRequestId(ImageSeedInfoNode):
    DESCRIPTION = ("Fetches the images of a fal request by its id, for free: waits while it runs, "
                   "never submits or cancels (FAL_KEY).")
    OUTPUT_TOOLTIPS = (
        "The request's images as one batch (those fal flagged as NSFW dropped by default).",
        "The seed fal used.",
        "JSON: request id, endpoint, seed, prompt as fal used it, NSFW flags, timings.",
    )
    FUNCTION = "collect"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        endpoints = list(pack_endpoints())
        return {
            "required": {
                REQUEST_ID_INPUT: ("STRING", {
                    "default": "", "tooltip": "The fal request id from fal's dashboard or a log "
                    "line (a URL holding one works too)."}),
                ENDPOINT_INPUT: (endpoints, {
                    "default": endpoints[0], "tooltip": "The fal endpoint the request was sent "
                    "to (any endpoint of the same fal app finds it)."}),
                "nsfw_policy": widget(p.BY_NAME["nsfw_policy"]),
            },
            "optional": {},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, request_id: str | None = None) -> bool | str:
        """An empty or malformed id is refused when the prompt is queued (None: a linked input,
        checked when the node runs)."""
        if request_id is None:
            return True
        try:
            checked_request_id(request_id)
        except InvalidInputError as error:
            return str(error)
        return True

    async def collect(self, request_id: str, endpoint: str, nsfw_policy: str = "drop",
                      unique_id: str | None = None) -> tuple[Any, int, str]:
        run = NodeRun(type(self).__name__, unique_id)
        with run.failures_shown():
            result = await run.bridge.run_interruptible(
                self._collect(request_id, endpoint, nsfw_policy, run.progress))
        images = await asyncio.to_thread(stack_results, [image.decoded for image in result.images])
        return images, int(result.seed or 0), json.dumps({**result.info,
                                                          "pack_version": pack_version()})

    @staticmethod
    async def _collect(request_id: str, endpoint: str, nsfw_policy: str,
                       progress: ProgressReporter) -> EditResult:
        async with shared_client() as client:
            return await collect_request(client, request_id, endpoint, nsfw_policy=nsfw_policy,
                                         progress=progress, store=node_job_store())


NODE_CLASS_MAPPINGS = {"FalResultByRequestId": FalResultByRequestId}
NODE_DISPLAY_NAME_MAPPINGS = {"FalResultByRequestId": "fal Result by Request ID"}
