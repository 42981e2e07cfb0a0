"""What the job layer (`run_edit`) needs from an edit request, whatever model family built it.

Both `EditRequest` (FLUX.1 Kontext) and `Flux2EditRequest` (FLUX.2) satisfy it; the job layer
may type its `request` parameter with it instead of a concrete class.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class EndpointModel(Protocol):
    endpoint_id: str  # the fal endpoint the request is submitted to


@runtime_checkable
class FalEditRequest(Protocol):
    """One edit as asked: checked locally, priced, and turned into fal's JSON body."""

    model: EndpointModel

    def validate(self, reference_count: int) -> None:
        """Raise InvalidInputError naming the input, before anything is uploaded or paid for."""

    def checked_values(self) -> dict[str, Any]:
        """Every field that shapes the output, checked and as fal takes it (the result-cache key
        is built from these, the endpoint id and the references); holds `output_format`, and
        `sync_mode` where the endpoint has it."""

    def arguments(self, image_urls: list[str]) -> dict[str, Any]:
        """fal's JSON body for these reference URLs (in order)."""

    @property
    def estimated_cost_usd(self) -> float:
        """What fal is expected to bill for this run (counted by the spend cap)."""

    @property
    def reproducible(self) -> bool:
        """False when fal is left to pick at random (no seed): the run is then never cached."""

    @property
    def instruction(self) -> str:
        """The edit instruction as the user wrote it."""
