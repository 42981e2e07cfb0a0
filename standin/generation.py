"""From a submitted body to outputs: validate, load references, render in the background.

Rendering starts at submit time in its own thread so a job's completion is set by the clock, not
by someone fetching the result (fal renders whether or not anyone is polling).
"""
from __future__ import annotations

import base64
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from . import flux2_schema as flux2
from .jobs import POLICY_VIOLATION, FailurePlan, Job, JobFailure
from .references import load_references
from .rendering import RenderedImage, nsfw_indices, render_outputs
from .responses import Reply, json_reply, validation_error
from .rng import SharedRandom
from .schema import NUM_IMAGES_DEFAULT, OUTPUT_FORMAT_DEFAULT, SEED_MAX, Endpoint, endpoint_for
from .storage import FileStore
from .validation import parse_body, validate_arguments

POLICY_TAG = "[policy]"
ENHANCED_SUFFIX = " (enhanced)"


@dataclass
class Prepared:
    """A request that passed validation, with its references decoded and its seed fixed."""

    model: Endpoint | flux2.Flux2Endpoint
    arguments: dict[str, Any]
    references: list[Image.Image]
    seed: int
    output_lifetime: float | None = None  # from X-Fal-Object-Lifecycle-Preference

    @property
    def is_flux2(self) -> bool:
        return isinstance(self.model, flux2.Flux2Endpoint)

    @property
    def num_images(self) -> int:
        if self.is_flux2:
            return 1  # FLUX.2 has no num_images: one image per request (a sent one is ignored)
        return int(self.arguments.get("num_images", NUM_IMAGES_DEFAULT))

    @property
    def violates_policy(self) -> bool:
        """The `[policy]` tag; for FLUX.2 also `[nsfw]` while its safety checker is on (FLUX.2
        reports no has_nsfw_concepts: a flagged result fails the job)."""
        prompt = self.arguments["prompt"]
        screened = self.is_flux2 and self.arguments.get("enable_safety_checker", True) \
            and nsfw_indices(prompt, 1)
        return POLICY_TAG in prompt.lower() or bool(screened)

    @property
    def output_size(self) -> tuple[int, int] | None:
        """FLUX.2's output size (known at submit); None for Kontext (always about 1 MP)."""
        if not self.is_flux2:
            return None
        return flux2.output_size(self.arguments.get("image_size", "auto"), self.references[0].size)

    @property
    def billed_megapixels(self) -> int:
        """FLUX.2: output plus references, rounded up; 0 for endpoints priced per image."""
        size = self.output_size
        if size is None:
            return 0
        return flux2.billed_megapixels(size, [image.size for image in self.references])

    @property
    def usd(self) -> float:
        """What fal bills if the job produces its output."""
        if isinstance(self.model, flux2.Flux2Endpoint):
            return flux2.usd(self.model, self.billed_megapixels)
        return round(self.model.usd_per_image * self.num_images, 4)


class Generator:
    def __init__(self, store: FileStore, cdn_url: Callable[[], str], rng: SharedRandom) -> None:
        self._store = store
        self._cdn_url = cdn_url
        self._rng = rng
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def prepare(self, endpoint_id: str, body: bytes) -> Prepared | Reply:
        """The accepted request, or the 404/422 reply refusing it."""
        try:
            model = endpoint_for(endpoint_id)
        except KeyError:
            return json_reply(404, {"detail": f"Application '{endpoint_id}' not found"})
        payload, errors = parse_body(body)
        if payload is None:
            return validation_error(errors)
        errors = validate_arguments(model, payload)
        if errors:
            return validation_error(errors)
        urls, locs = _reference_inputs(model, payload)
        references, errors = load_references(urls, locs, self._store, self._cdn_url())
        if errors:
            return validation_error(errors)
        seed = payload.get("seed")
        if seed is None:
            seed = self._rng.randint(0, SEED_MAX)
        return Prepared(model, payload, references, seed)

    def render(self, prepared: Prepared, processing_delay: float) -> dict[str, Any]:
        """The output JSON fal would return for this request."""
        args = prepared.arguments
        if prepared.is_flux2:
            return self._render_flux2(prepared)
        outputs = render_outputs(prepared.references, args["prompt"], prepared.seed,
                                 prepared.num_images,
                                 args.get("output_format", OUTPUT_FORMAT_DEFAULT),
                                 args.get("aspect_ratio"))
        sync = bool(args.get("sync_mode", False))
        prompt = args["prompt"] + (ENHANCED_SUFFIX if args.get("enhance_prompt") else "")
        return {
            "images": [self._image_entry(output, index, sync, prepared.output_lifetime)
                       for index, output in enumerate(outputs)],
            "timings": {"inference": float(processing_delay)},
            "seed": prepared.seed,
            "has_nsfw_concepts": [output.flagged for output in outputs],
            "prompt": prompt,
        }

    def _render_flux2(self, prepared: Prepared) -> dict[str, Any]:
        """FLUX.2's output: one image at the asked size, and the seed; nothing else."""
        args = prepared.arguments
        output, = render_outputs(prepared.references, args["prompt"], prepared.seed, 1,
                                 args.get("output_format", OUTPUT_FORMAT_DEFAULT), None,
                                 size=prepared.output_size, flag_nsfw=False)
        entry = self._image_entry(output, 0, bool(args.get("sync_mode", False)),
                                  prepared.output_lifetime)
        return {"images": [entry], "seed": prepared.seed}

    def _image_entry(self, output: RenderedImage, index: int, sync: bool,
                     lifetime: float | None) -> dict[str, Any]:
        if sync:  # fal inlines outputs as data URIs and keeps nothing in storage
            url = f"data:{output.content_type};base64,{base64.b64encode(output.data).decode()}"
        else:
            extension = "png" if output.content_type == "image/png" else "jpg"
            file_id, name = self._store.put(output.data, output.content_type,
                                            f"output_{index}.{extension}", lifetime)
            url = self._cdn_url() + FileStore.path_for(file_id, name)
        return {"url": url, "width": output.width, "height": output.height,
                "content_type": output.content_type}

    def start_render(self, job: Job, prepared: Prepared) -> None:
        thread = threading.Thread(target=self._render_job, args=(job, prepared),
                                  name=f"standin-render-{job.request_id[:8]}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _render_job(self, job: Job, prepared: Prepared) -> None:
        try:
            result = self.render(prepared, job.processing_delay)
        except Exception:  # a rendering bug must fail the job, not leave it in progress forever
            traceback.print_exc()
            job.finish_rendering(time.monotonic(), None, JobFailure.flat(
                500, "Stand-in rendering failed", "runner_server_error"))
            return
        job.finish_rendering(time.monotonic(), result)

    def join(self, timeout: float = 10.0) -> None:
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _reference_inputs(model: Endpoint, payload: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    if model.takes_many_references:
        urls = list(payload["image_urls"])
        return urls, [["body", "image_urls", index] for index in range(len(urls))]
    return [payload["image_url"]], [["body", "image_url"]]


def planned_failure(prepared: Prepared, plan: FailurePlan) -> JobFailure | None:
    """A job's failure known at submit time; a policy trigger wins and leaves the plan armed."""
    return POLICY_VIOLATION if prepared.violates_policy else plan.take()
