"""The Kontext pack's own errors: what the user gave, what the pack allows, what came back.

They extend the client's `FalError`, so one `except FalError` (the node, the CLI) catches every
failure with its one-line message; the transport and protocol errors stay in `client/errors.py`.
"""
from __future__ import annotations

from ..client.errors import FalError
from ..jobs.errors import DecodeError, SafetyFilterError  # noqa: F401 - the pack's errors in one place


class KontextError(FalError):
    """Base of the pack's own errors (not fal's answers)."""


class InvalidInputError(KontextError):
    """A local check refused an input before anything was sent (no money spent). The message
    starts with the input's name, as a person would say it: "prompt is empty: ..."."""

    def __init__(self, input_name: str, problem: str):
        self.input_name = input_name
        self.problem = problem  # the words after the name
        super().__init__(f"{input_name} {problem}")


class SpendCapError(KontextError):
    """A run would push this process's spending above FAL_KONTEXT_MAX_SPEND_USD."""
