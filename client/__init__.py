"""A standalone async client for fal.ai's queue, storage and files (httpx; no torch, no ComfyUI)."""
from .credentials import default_config_path, resolve_key
from .errors import (AuthError, ConfigurationError, ConnectionFailedError, ContentPolicyError,
                     DownloadError, FalConnectionError, FalError, FalJobError, FalStatusError,
                     FalTimeoutError, FieldError, JobCancelledError, JobFailedError,
                     JobNotFoundError, MissingKeyError, RateLimitError, RequestRejectedError,
                     ServerError, StartDeadlineError, SubmitUncertainError, ValidationError)
from .fal import FalClient
from .hosts import BASE_URL_ENV, FalHosts
from .queue_types import CancelOutcome, JobState, JobStatus, QueueUpdate, RequestHandle
from .retry import RetryPolicy
from .storage import SHARED_SERVED_FILES, SHARED_UPLOAD_CACHE, ServedFile, ServedFiles, UploadCache

__all__ = [
    "AuthError", "BASE_URL_ENV", "CancelOutcome", "ConfigurationError", "ConnectionFailedError",
    "ContentPolicyError", "DownloadError", "FalClient", "FalConnectionError", "FalError",
    "FalHosts", "FalJobError", "FalStatusError", "FalTimeoutError", "FieldError",
    "JobCancelledError", "JobFailedError", "JobNotFoundError", "JobState", "JobStatus",
    "MissingKeyError", "QueueUpdate", "RateLimitError", "RequestHandle", "RequestRejectedError",
    "RetryPolicy", "SHARED_SERVED_FILES", "SHARED_UPLOAD_CACHE", "ServedFile", "ServedFiles",
    "ServerError", "StartDeadlineError", "SubmitUncertainError", "UploadCache", "ValidationError", "default_config_path", "resolve_key",
]
