"""The FLUX.2 Edit node: it declares its inputs and delegates (the request and its price:
kontext/flux2_request.py; the run: node_runs.py, the same path as the Kontext nodes)."""
from __future__ import annotations

import asyncio
from typing import Any

from ..kontext import flux2_models as f
from ..kontext import flux2_parameters as fp
from ..kontext.errors import InvalidInputError
from ..kontext.flux2_request import Flux2EditRequest
from ..kontext.pipeline import EditResult
from ..kontext.parameters import MODEL
from .node_inputs import node_input_types, reference_socket
from .queue_checks import check_when_queued
from .node_runs import ImageSeedInfoNode, NodeRun, node_outputs
from .references import collect_references, sent_reference_sizes

CATEGORY = "fal/FLUX.2"


class FalFlux2Edit(ImageSeedInfoNode):
    """FLUX.2 [pro] / [max] / [flex] multi-reference edit on fal.ai."""

    MODELS = f.FLUX2_MODELS
    TABLE = fp.TABLE
    REFERENCE_INPUTS = ("images", "image_2", "image_3", "image_4")
    OUTPUT_TOOLTIPS = (
        "The edited image (FLUX.2 makes one per run).",
        "The seed fal used.",
        "JSON: fal request id, seed, estimated cost, billed megapixels, output and reference sizes.",
    )
    FUNCTION = "edit"
    CATEGORY = CATEGORY
    DESCRIPTION = ("FLUX.2 on fal.ai: edits the images on its inputs as an instruction says. "
                   "fal bills per megapixel (FAL_KEY).")

    @classmethod
    def VALIDATE_INPUTS(cls, prompt: str | None = None) -> bool | str:
        """An empty instruction is refused when the prompt is queued (see the Kontext nodes)."""
        return check_when_queued({"prompt": prompt})

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        more = "More references, numbered after the ones before (each frame of a batch counts)."
        return node_input_types(
            {"images": reference_socket("Image 1; a batch gives images 1, 2, ... in batch order.")},
            {name: reference_socket(more) for name in cls.REFERENCE_INPUTS[1:]}, cls.__name__,
            cls.TABLE)

    async def edit(self, unique_id: str | None = None, **inputs: Any) -> tuple[Any, int, str]:
        """Every widget arrives by its table name; references by their socket names."""
        run = NodeRun(type(self).__name__, unique_id)
        with run.failures_shown():
            model = self._model(inputs)
            options = self.TABLE.check_options(inputs)
            # The price needs every reference's size as sent, known before anything is encoded.
            sizes = sent_reference_sizes(inputs, self.REFERENCE_INPUTS,
                                         options["max_reference_megapixels"])
            request = Flux2EditRequest.from_inputs(model, {**self.TABLE.defaults(), **inputs},
                                                   sizes)
            request.validate(len(sizes))
            references = await asyncio.to_thread(collect_references, inputs, self.REFERENCE_INPUTS,
                                                 options["max_reference_megapixels"],
                                                 options["reference_encoding"])
            result = await run.run(request, references, options)
        return await node_outputs(result, request,
                                  request.priced_info(result.info, _output_size(result)))

    def _model(self, inputs: dict[str, Any]) -> f.Flux2Model:
        tier = inputs.get(MODEL, self.TABLE.by_name[MODEL].default)
        model = self.MODELS.get(tier)
        if model is None:
            raise InvalidInputError(MODEL, f"must be one of {', '.join(self.MODELS)}; got {tier!r}")
        return model


def _output_size(result: EditResult) -> f.Size | None:
    """(width, height) of the first result image fal made, from its decoded pixels."""
    shape = getattr(result.images[0].decoded, "shape", None) if result.images else None
    return (int(shape[1]), int(shape[0])) if shape is not None and len(shape) >= 2 else None


NODE_CLASS_MAPPINGS = {"FalFlux2Edit": FalFlux2Edit}
NODE_DISPLAY_NAME_MAPPINGS = {"FalFlux2Edit": "FLUX.2 Edit (fal)"}
