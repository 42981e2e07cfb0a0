"""The Kontext node classes: they declare inputs and delegate to the pipeline."""
from __future__ import annotations

import asyncio
from typing import Any

from ..kontext.errors import InvalidInputError
from ..kontext import models as m
from ..kontext import parameters as p
from ..kontext.edit_request import EditRequest
from .node_inputs import node_input_types, reference_socket
from .node_runs import ImageSeedInfoNode, NodeRun, node_outputs
from .queue_checks import check_when_queued
from .references import collect_references, count_frames

# The pack's own menu entry. Not under "api node": frontend 1.58 files that under PARTNER NODES,
# beside the nodes Comfy bills for; fal bills these runs.
CATEGORY = "fal/Kontext"


class _KontextNode(ImageSeedInfoNode):
    """Shared body of the Kontext nodes; subclasses name their models and reference sockets."""

    MODELS: dict[str, m.KontextModel] = {}
    REFERENCE_INPUTS: tuple[str, ...] = ()
    OUTPUT_TOOLTIPS = (
        "The results as one batch (images fal's safety checker flagged are dropped by default).",
        "The seed fal used.",
        "JSON: fal request id, seed, prompt as used, safety flags, timings, estimated cost.",
    )
    FUNCTION = "edit"
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, prompt: str | None = None) -> bool | str:
        """Called by ComfyUI when the prompt is queued: an empty instruction is refused before
        anything runs. It names `prompt` only, on purpose: ComfyUI repeats a refusal once per
        input named here and skips its own range and choice checks for them, which it makes
        for every other widget from INPUT_TYPES, i.e. from the same parameter table."""
        return check_when_queued({"prompt": prompt})

    async def edit(self, unique_id: str | None = None, **inputs: Any) -> tuple[Any, int, str]:
        """Every widget arrives by its table name; references by their socket names."""
        run = NodeRun(type(self).__name__, unique_id)
        with run.failures_shown():
            inputs = run.as_saved(inputs)
            request = EditRequest.from_inputs(self._model(inputs), {**p.defaults(), **inputs})
            request.validate(count_frames(inputs, self.REFERENCE_INPUTS), self.REFERENCE_INPUTS[0])
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
    DESCRIPTION = ("FLUX.1 Kontext on fal.ai: edits the images on its inputs as an instruction "
                   "says. fal bills each run (FAL_KEY).")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        more = "More references, numbered after the ones before (each frame of a batch counts)."
        return node_input_types(
            {"images": reference_socket("Image 1; a batch gives images 1, 2, ... in batch order.")},
            {name: reference_socket(more) for name in cls.REFERENCE_INPUTS[1:]}, cls.__name__)


class FalKontextEdit(_KontextNode):
    MODELS = m.SINGLE_MODELS
    REFERENCE_INPUTS = ("image",)
    DESCRIPTION = ("FLUX.1 Kontext on fal.ai: edits one image as an instruction says. fal bills "
                   "each run (FAL_KEY).")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return node_input_types({"image": reference_socket("The image to edit (one frame).")}, {},
                                cls.__name__)


NODE_CLASS_MAPPINGS = {"FalKontextMulti": FalKontextMulti, "FalKontextEdit": FalKontextEdit}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FalKontextMulti": "FLUX.1 Kontext Multi (fal)",
    "FalKontextEdit": "FLUX.1 Kontext Edit (fal)",
}
