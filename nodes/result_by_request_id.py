"""The 'fal Result by Request ID' node: the images of a request fal already has, fetched by its
id (a run killed before fal named its job, a job started elsewhere). It declares its inputs and
delegates to `kontext/collect.py`; it costs nothing and never submits or cancels a job."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from ..client.errors import FalError
from ..kontext import parameters as p
from ..kontext.collect import ENDPOINT_INPUT, REQUEST_ID_INPUT, collect_request, pack_endpoints
from ..kontext.pipeline import EditResult
from ..kontext.progress import ProgressReporter
from ..version import pack_version
from .client_pool import shared_client
from .comfy_bridge import NodeBridge
from .comfy_paths import node_job_store
from .image_tensors import stack_results
from .node_inputs import widget

CATEGORY = "fal/Kontext"


class FalResultByRequestId:
    DESCRIPTION = ("The images of a fal request, fetched by its id (from fal's dashboard, or the "
                   "log line of a run that stopped before fal named its job): waits while it "
                   "still runs, costs nothing, never submits or cancels a job. Needs FAL_KEY.")
    RETURN_TYPES = ("IMAGE", "INT", "STRING")
    RETURN_NAMES = ("images", "seed", "info")
    OUTPUT_TOOLTIPS = (
        "The request's result images as one batch (images fal flagged as NSFW are dropped by "
        "default).",
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
                    "default": "", "tooltip": "The fal request id, e.g. "
                    "764cabcf-b745-4b3e-ae38-1200304cf45b (a URL holding one works too). fal "
                    "keeps a result about an hour; once fetched it stays in the result cache."}),
                ENDPOINT_INPUT: (endpoints, {
                    "default": endpoints[0], "tooltip": "The fal endpoint the request was sent "
                    "to (any endpoint of the same fal app finds it)."}),
                "nsfw_policy": widget(p.BY_NAME["nsfw_policy"]),
            },
            "optional": {},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    async def collect(self, request_id: str, endpoint: str, nsfw_policy: str = "drop",
                      unique_id: str | None = None) -> tuple[Any, int, str]:
        bridge = NodeBridge(unique_id)
        progress = ProgressReporter(bridge.show, log_prefix=f"[{type(self).__name__} #{unique_id}] ")
        try:
            result = await bridge.run_interruptible(
                self._collect(request_id, endpoint, nsfw_policy, progress))
        except FalError as error:
            progress.failed(str(error))  # the status line ends with the same words as the error
            raise
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
