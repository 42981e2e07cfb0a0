"""Process-wide redaction of secrets, applied to every error message and log line we emit.

Keys are registered when they are loaded, so text built anywhere (a server echoing a header,
an exception from a library) cannot carry one out.
"""
from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_SECRET_LENGTH = 6  # shorter strings would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Remember a secret (and its halves, for `id:secret` keys) so `redact` masks it."""
    parts = {secret, *secret.split(":")}
    with _lock:
        _secrets.update(p for p in parts if len(p) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    """Replace every registered secret in `text` with a mask."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_key(key: str) -> str:
    """A display form of a key that identifies it without revealing it: `abcd…wxyz` style."""
    if len(key) < 12:
        return MASK
    return f"{key[:4]}{MASK}{key[-2:]}"


class RedactingFilter(logging.Filter):
    """Logging filter that redacts registered secrets from records before they are emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger) -> None:
    """Attach the redacting filter once to `logger`."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
