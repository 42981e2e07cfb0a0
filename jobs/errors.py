"""Errors about what a finished fal job delivered (the job ran, and was billed)."""
from __future__ import annotations

from ..client.errors import FalError


class ResultError(FalError):
    """Base of the errors about a job's result."""


class DecodeError(ResultError):
    """Bytes that should be an image could not be decoded (corrupt, unsupported, too large)."""


class SafetyFilterError(ResultError):
    """fal's safety checker flagged result images (has_nsfw_concepts) and the policy refuses them."""
