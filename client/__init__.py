"""A standalone async client for fal.ai's queue, storage and files (httpx; no torch, no ComfyUI)."""
from .credentials import default_config_path, resolve_key
from .errors import (AuthError, CancelledError, ConfigurationError, JobCancelledError,
                     JobNotFoundError, StartDeadlineError,
                     ConnectionFailedError, ContentPolicyError, DecodeError, DownloadError,
                     FalError, FalTimeoutError, FieldError, InvalidInputError, JobFailedError,
                     MissingKeyError, RateLimitError, RequestRejectedError, SafetyFilterError, ServerError,
                     SpendCapError, SubmitUncertainError, ValidationError)
from .fal import FalClient
from .hosts import BASE_URL_ENV, FalHosts
from .queue_types import CancelOutcome, JobState, JobStatus, QueueUpdate, RequestHandle
from .retry import RetryPolicy
from .storage import SHARED_UPLOAD_CACHE, UploadCache

__all__ = [
    "AuthError", "BASE_URL_ENV", "CancelOutcome", "CancelledError", "JobCancelledError",
    "JobNotFoundError", "StartDeadlineError",
    "ConfigurationError", "ConnectionFailedError", "ContentPolicyError", "DecodeError",
    "DownloadError", "FalClient", "FalError", "FalHosts", "FalTimeoutError", "FieldError",
    "InvalidInputError", "JobFailedError", "JobState", "JobStatus", "MissingKeyError",
    "QueueUpdate", "RateLimitError", "RequestHandle", "RequestRejectedError", "RetryPolicy",
    "SHARED_UPLOAD_CACHE", "SafetyFilterError", "ServerError", "SpendCapError", "SubmitUncertainError", "UploadCache",
    "ValidationError", "default_config_path", "resolve_key",
]
