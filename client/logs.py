"""The pack's one logger, with secret redaction attached."""
from __future__ import annotations

import logging

from .redaction import install_log_redaction

logger = logging.getLogger("fal_kontext")
install_log_redaction(logger)

# httpx logs every request at INFO; inside ComfyUI (root logger at INFO) each status poll would
# print a line. Quiet it unless the application configured httpx's logger itself.
_httpx_logger = logging.getLogger("httpx")
if _httpx_logger.level == logging.NOTSET:
    _httpx_logger.setLevel(logging.WARNING)
