"""The Kontext node classes: they declare inputs and delegate to the pipeline."""
from __future__ import annotations

import asyncio
from typing import Any

from ..kontext.errors import InvalidInputError
from ..kontext import models as m
from ..kontext import parameters as p
from ..kontext.edit_request import EditRequest
from .node_inputs import node_input_types, reference_socket
from .node_runs import NodeRun, node_outputs
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

    async def edit(self, unique_id: str | None = None, **inputs: Any) -> tuple[Any, int, str]:
        """Every widget arrives by its table name; references by their socket names."""
        run = NodeRun(type(self).__name__, unique_id)
        with run.failures_shown():
            inputs = run.as_saved(inputs)
            request = EditRequest.from_inputs(self._model(inputs), {**p.defaults(), **inputs})
            request.validate(count_frames(inputs, self.REFERENCE_INPUTS))
            options = p.check_options(inputs)
            references = await asyncio.to_thread(collect_references, inputs, self.REFERENCE_INPUTS,
                                                 options["max_reference_megapixels"],
                                                 options["reference_encoding"])
            result = await run.run(request, references, options)
        return await node_outputs(result, request)

    def _model(self, inputs: dict[str, Any]) -> m.KontextModel:
        tier = inputs.get(p.MODEL, p.BY_NAME[p.MODEL].default)
        model = self.MODELS.get(tier)
        if model is None:
            raise InvalidInputError(p.MODEL, f"must be one of {', '.join(self.MODELS)}; got {tier!r}")
        return model


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
            {name: reference_socket(more) for name in cls.REFERENCE_INPUTS[1:]}, cls.__name__)


class FalKontextEdit(_KontextNode):
    MODELS = m.SINGLE_MODELS
    REFERENCE_INPUTS = ("image",)
    DESCRIPTION = "FLUX.1 Kontext single-image editing on fal.ai. Needs FAL_KEY."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return node_input_types({"image": reference_socket("The image to edit (one frame).")}, {},
                                cls.__name__)


NODE_CLASS_MAPPINGS = {"FalKontextMulti": FalKontextMulti, "FalKontextEdit": FalKontextEdit}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FalKontextMulti": "FLUX.1 Kontext Multi (fal)",
    "FalKontextEdit": "FLUX.1 Kontext Edit (fal)",
}
