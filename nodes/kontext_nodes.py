"""The Kontext node classes: they declare inputs and delegate to the pipeline."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from ..client.errors import InvalidInputError
from ..kontext import models as m
from ..kontext.edit_request import EditRequest
from ..kontext.pipeline import EditOptions, EditResult, run_edit
from ..kontext.progress import ProgressReporter
from ..kontext.result_cache import default_result_cache
from .client_pool import shared_client
from .comfy_bridge import NodeBridge
from .image_tensors import stack_results
from .node_inputs import DEFAULT_MAX_REFERENCE_MEGAPIXELS, node_input_types, reference_socket
from .references import collect_references, count_frames

CATEGORY = "api node/image/fal Kontext"


class _KontextNode:
    """Shared body of the Kontext nodes; subclasses name their models and reference sockets."""

    MODELS: dict[str, m.KontextModel] = {}
    REFERENCE_INPUTS: tuple[str, ...] = ()
    RETURN_TYPES = ("IMAGE", "INT", "STRING")
    RETURN_NAMES = ("images", "seed", "info")
    OUTPUT_TOOLTIPS = (
        "All result images as one batch (images fal flagged as NSFW are dropped by default).",
        "The seed fal used.",
        "JSON: request id, endpoint, seed, prompt as used, NSFW flags, timings, estimated cost.",
    )
    FUNCTION = "edit"
    CATEGORY = CATEGORY

    async def edit(self, prompt: str, model: str, seed: int, guidance_scale: float,
                   num_images: int, aspect_ratio: str, output_format: str, safety_tolerance: str,
                   enhance_prompt: bool, sync_mode: bool, reference_transport: str = "upload",
                   max_reference_megapixels: float = DEFAULT_MAX_REFERENCE_MEGAPIXELS,
                   timeout_seconds: int = int(m.DEFAULT_TIMEOUT_SECONDS),
                   nsfw_policy: str = m.NSFW_POLICIES[0], use_result_cache: bool = True,
                   reference_encoding: str = m.REFERENCE_ENCODING_DEFAULT,
                   unique_id: str | None = None, **reference_inputs: Any) -> tuple[Any, int, str]:
        request = EditRequest(
            model=self.MODELS.get(model) or self._unknown_model(model), prompt=prompt, seed=seed,
            guidance_scale=guidance_scale, num_images=num_images, aspect_ratio=aspect_ratio,
            output_format=output_format, safety_tolerance=str(safety_tolerance),
            enhance_prompt=enhance_prompt, sync_mode=sync_mode)
        request.validate(count_frames(reference_inputs, self.REFERENCE_INPUTS))
        references = await asyncio.to_thread(
            collect_references, reference_inputs, self.REFERENCE_INPUTS, max_reference_megapixels,
            reference_encoding)
        options = EditOptions(transport=reference_transport, timeout=float(timeout_seconds),
                              nsfw_policy=nsfw_policy)
        bridge = NodeBridge(unique_id)
        progress = ProgressReporter(bridge.show, log_prefix=f"[{type(self).__name__} #{unique_id}] ")
        result = await bridge.run_interruptible(self._run(request, references, options, progress,
                                                          bridge, use_result_cache))
        images = await asyncio.to_thread(stack_results, [image.decoded for image in result.images])
        return images, int(result.seed if result.seed is not None else seed), json.dumps(result.info)

    @staticmethod
    async def _run(request: EditRequest, references: list, options: EditOptions,
                   progress: ProgressReporter, bridge: NodeBridge, use_result_cache: bool) -> EditResult:
        async with shared_client() as client:
            return await run_edit(client, request, references, options=options, progress=progress,
                                  should_cancel=bridge.should_stop,
                                  result_cache=default_result_cache() if use_result_cache else None)

    def _unknown_model(self, model: str) -> m.KontextModel:
        raise InvalidInputError("model", f"must be one of {', '.join(self.MODELS)}; got {model!r}")


class FalKontextMulti(_KontextNode):
    MODELS = m.MULTI_MODELS
    REFERENCE_INPUTS = ("images", "image_2", "image_3", "image_4")
    DESCRIPTION = ("FLUX.1 Kontext multi-image editing on fal.ai: combine up to "
                   f"{m.MAX_REFERENCES} reference images with a text instruction. Needs FAL_KEY.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        more = "More references (a batch counts frame by frame), appended after the ones before."
        return node_input_types(
            {"images": reference_socket("Reference images; every frame of the batch is one "
                                        "reference, in batch order (image 1, image 2, ...).")},
            {name: reference_socket(more) for name in cls.REFERENCE_INPUTS[1:]})


class FalKontextEdit(_KontextNode):
    MODELS = m.SINGLE_MODELS
    REFERENCE_INPUTS = ("image",)
    DESCRIPTION = "FLUX.1 Kontext single-image editing on fal.ai. Needs FAL_KEY."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return node_input_types({"image": reference_socket("The image to edit (one frame).")}, {})


NODE_CLASS_MAPPINGS = {"FalKontextMulti": FalKontextMulti, "FalKontextEdit": FalKontextEdit}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FalKontextMulti": "FLUX.1 Kontext Multi (fal)",
    "FalKontextEdit": "FLUX.1 Kontext Edit (fal)",
}
