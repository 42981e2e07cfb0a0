"""The pack's one logger, with secret redaction attached."""
from __future__ import annotations

import logging

from .redaction import install_log_redaction

logger = logging.getLogger("fal_kontext")
install_log_redaction(logger)
