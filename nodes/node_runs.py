"""One node execution against fal, shared by every node class: the UI bridge, the status line,
the run itself (interruptible, through the shared client and the result cache) and the outputs.

The node classes only build a request and its references; everything after is here.
"""
from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

from ..client.errors import FalError
from ..jobs.store import JobStore
from ..kontext.pipeline import EditOptions, EditResult, Reference, run_edit
from ..kontext.progress import ProgressReporter
from ..kontext.request_contract import FalEditRequest
from .client_pool import shared_client
from .comfy_bridge import NodeBridge
from ..version import pack_version
from .comfy_paths import node_job_store
from .compatibility import accept_retired_inputs, with_old_behaviour
from .image_tensors import stack_results


class ImageSeedInfoNode:
    """The outputs every node of the pack has, in this order: saved workflows link them by slot,
    so they never change (README, "Keeping saved workflows working")."""

    RETURN_TYPES = ("IMAGE", "INT", "STRING")
    RETURN_NAMES = ("images", "seed", "info")


class NodeRun:
    """A node's link to the UI for one execution, and the run it starts."""

    def __init__(self, node_name: str, unique_id: str | None) -> None:
        self.node_name = node_name
        self.bridge = NodeBridge(unique_id)
        self.log_prefix = f"[{node_name} #{unique_id}] "
        self.progress = ProgressReporter(self.bridge.show, log_prefix=self.log_prefix)

    def as_saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs as this release reads them: retired names mapped, inputs a saved prompt
        predates set to what its release did (`compatibility.py`)."""
        mapped = accept_retired_inputs(self.node_name, inputs, self.log_prefix)
        return with_old_behaviour(self.node_name, mapped)

    @contextmanager
    def failures_shown(self) -> Iterator[None]:
        """A failure ends the status line with the same words as the error, and the node's
        running look (progress bar, outline), then propagates."""
        try:
            yield
        except BaseException as error:
            if isinstance(error, FalError):
                self.progress.failed(str(error))
            self.bridge.stopped_running()  # else frontend 1.27 keeps drawing the node as running
            raise

    async def run(self, request: FalEditRequest, references: Sequence[Reference],
                  options: Mapping[str, Any]) -> EditResult:
        """Run the edit with the pack's checked options (`ParameterTable.check_options`)."""
        run_options = EditOptions(transport=options["reference_transport"],
                                  timeout=options["timeout_seconds"],
                                  nsfw_policy=options["nsfw_policy"])
        store = node_job_store(options["use_result_cache"])
        return await self.bridge.run_interruptible(
            _run(request, references, run_options, self.progress, store))


async def _run(request: FalEditRequest, references: Sequence[Reference], options: EditOptions,
               progress: ProgressReporter, store: JobStore) -> EditResult:
    async with shared_client() as client:
        return await run_edit(client, request, references, options=options, progress=progress,
                              store=store)


async def node_outputs(result: EditResult, request: FalEditRequest,
                       info: Mapping[str, Any] | None = None) -> tuple[Any, int, str]:
    """(IMAGE batch, seed, info JSON): the nodes' three outputs. `info` also names the release
    of the pack that made them, for bug reports (the pipeline's `info`, shared with the CLI,
    stays a record of the fal job alone)."""
    images = await asyncio.to_thread(stack_results, [image.decoded for image in result.images])
    seed = result.seed if result.seed is not None else request.checked_values().get("seed")
    details = dict(info if info is not None else result.info)
    return images, int(seed or 0), json.dumps({**details, "pack_version": pack_version()})
