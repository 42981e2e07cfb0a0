"""The optional per-process spend cap (FAL_KONTEXT_MAX_SPEND_USD), safe across concurrent runs."""
from __future__ import annotations

import os
import threading
from typing import Mapping

from ..client.errors import ConfigurationError
from .errors import SpendCapError

SPEND_CAP_ENV = "FAL_KONTEXT_MAX_SPEND_USD"


class SpendTracker:
    """Counts what this process has submitted. A run reserves its cost before submitting; the
    reservation is released only if the submit provably never reached fal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spent_usd = 0.0

    def reserve(self, cost_usd: float, environ: Mapping[str, str] = os.environ) -> None:
        cap = spend_cap(environ)
        with self._lock:
            if cap is not None and self.spent_usd + cost_usd > cap + 1e-9:
                raise SpendCapError(
                    f"This run would cost about ${cost_usd:.2f}, but this ComfyUI process has "
                    f"already spent ${self.spent_usd:.2f} of its ${cap:.2f} cap ({SPEND_CAP_ENV}); "
                    "raise or unset the cap, or restart ComfyUI to reset it")
            self.spent_usd += cost_usd

    def release(self, cost_usd: float) -> None:
        with self._lock:
            self.spent_usd = max(0.0, self.spent_usd - cost_usd)

    def reset(self) -> None:
        with self._lock:
            self.spent_usd = 0.0


def spend_cap(environ: Mapping[str, str] = os.environ) -> float | None:
    raw = environ.get(SPEND_CAP_ENV, "").strip()
    if not raw:
        return None
    try:
        cap = float(raw)
    except ValueError:
        cap = -1.0
    if not cap >= 0:
        raise ConfigurationError(f"{SPEND_CAP_ENV}={raw!r} is not an amount in US dollars, e.g. 5.00")
    return cap


PROCESS_SPENDING = SpendTracker()
