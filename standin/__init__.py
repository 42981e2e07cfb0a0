"""A fal-compatible stand-in server for the Kontext endpoints (tests, demos, offline work).

    with StandInServer(processing_delay=0.2) as server:
        ...  # point the client at server.base_url (queue + storage) and server.cdn_url
"""
from .faults import RETRY_SAFE_ROUTES, ROUTES, Fault, FaultBook
from .jobs import COMPLETED, IN_PROGRESS, IN_QUEUE, Job, JobFailure
from .records import RecordedRequest
from .server import StandInServer

__all__ = [
    "COMPLETED", "IN_PROGRESS", "IN_QUEUE", "RETRY_SAFE_ROUTES", "ROUTES", "Fault", "FaultBook",
    "Job", "JobFailure", "RecordedRequest", "StandInServer",
]
