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
from ..kontext.pipeline import EditOptions, EditResult, Reference, run_edit
from ..kontext.progress import ProgressReporter
from ..kontext.request_contract import FalEditRequest
from .client_pool import shared_client
from .comfy_bridge import NodeBridge
from .comfy_paths import node_result_cache
from .image_tensors import stack_results


class NodeRun:
    """A node's link to the UI for one execution, and the run it starts."""

    def __init__(self, node_name: str, unique_id: str | None) -> None:
        self.bridge = NodeBridge(unique_id)
        self.progress = ProgressReporter(self.bridge.show, log_prefix=f"[{node_name} #{unique_id}] ")

    @contextmanager
    def failures_shown(self) -> Iterator[None]:
        """A failure ends the status line with the same words as the error, then propagates."""
        try:
            yield
        except FalError as error:
            self.progress.failed(str(error))
            raise

    async def run(self, request: FalEditRequest, references: Sequence[Reference],
                  options: Mapping[str, Any]) -> EditResult:
        """Run the edit with the pack's checked options (`ParameterTable.check_options`)."""
        run_options = EditOptions(transport=options["reference_transport"],
                                  timeout=options["timeout_seconds"],
                                  nsfw_policy=options["nsfw_policy"])
        cache = node_result_cache() if options["use_result_cache"] else None
        return await self.bridge.run_interruptible(
            _run(request, references, run_options, self.progress, cache))


async def _run(request: FalEditRequest, references: Sequence[Reference], options: EditOptions,
               progress: ProgressReporter, cache: Any) -> EditResult:
    async with shared_client() as client:
        return await run_edit(client, request, references, options=options,  # type: ignore[arg-type]
                              progress=progress, result_cache=cache)


async def node_outputs(result: EditResult, request: FalEditRequest,
                       info: Mapping[str, Any] | None = None) -> tuple[Any, int, str]:
    """(IMAGE batch, seed, info JSON): the nodes' three outputs."""
    images = await asyncio.to_thread(stack_results, [image.decoded for image in result.images])
    seed = result.seed if result.seed is not None else request.checked_values().get("seed")
    return images, int(seed or 0), json.dumps(dict(info if info is not None else result.info))
