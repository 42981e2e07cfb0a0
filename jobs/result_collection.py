"""A finished fal job's output -> checked result images: NSFW policy, downloads, decoding.

Used for every job, whether a node is waiting for it or it is being kept in the background after
a cancel or a crash: a result is decoded before anyone (the cache included) sees it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from ..client import FalClient
from ..client.data_uri import is_data_uri
from ..client.errors import DownloadError
from ..client.logs import logger
from ..client.queue_types import RequestHandle
from ..client.storage import ServedFile, reuse_deadline
from .errors import DecodeError, SafetyFilterError
from .result_images import decode_image, served_identity

Decoder = Callable[[bytes], Any]  # raises DecodeError for bytes that are not a usable image


@dataclass(frozen=True)
class CollectSpec:
    """What turning a job's output into a result needs; plain data, so the job ledger can keep
    it for a job collected by a later process."""

    endpoint_id: str
    instruction: str  # what was asked; fal's answer says what it used
    default_content_type: str  # for an output entry that does not name its own
    estimated_cost_usd: float
    nsfw_policy: str = "drop"
    max_download_bytes: int | None = None
    inline_results: bool = False  # results as data URIs: fal keeps them only minutes
    # How long fal keeps the output files (the lifecycle the submit asked for); None: unknown.
    output_lifetime: int | None = None


@dataclass
class ResultImage:
    data: bytes  # the file as fal returned it
    content_type: str
    index: int  # position in fal's answer
    nsfw: bool = False
    decoded: Any = None  # what the run's decoder made of `data` (pixels for the nodes)
    url: str = ""  # where fal serves the file; "" for an inline (sync_mode) result
    served: ServedFile | None = None  # set when its URL may be handed back to fal (chaining)


@dataclass
class EditResult:
    images: list[ResultImage]
    seed: int | None
    info: dict[str, Any] = field(default_factory=dict)


async def collect_result(client: FalClient, output: dict[str, Any], handle: RequestHandle,
                         spec: CollectSpec, *, decode: Decoder = decode_image,
                         on_downloaded: Callable[[int, int], None] | None = None) -> EditResult:
    """Download and decode the images the NSFW policy keeps, in parallel, in fal's order."""
    entries = [e for e in output.get("images") or [] if isinstance(e, dict) and e.get("url")]
    flags = _nsfw_flags(output, len(entries))
    keep = _apply_nsfw_policy(flags, spec.nsfw_policy, handle.request_id)
    done = 0

    async def fetch(index: int) -> ResultImage:
        nonlocal done
        entry = entries[index]
        try:
            data = await client.download(entry["url"], max_bytes=spec.max_download_bytes,
                                         expect_image=True)
        except DownloadError as error:
            # The job ran and was billed: name it, so its result can still be found at fal.
            raise DownloadError(f"{error.message}; the job finished, its result stays in "
                                "https://fal.ai/dashboard/requests", request_id=handle.request_id,
                                status_code=error.status_code) from None
        decoded = await decode_in_thread(decode, data, handle.request_id)
        done += 1
        if on_downloaded is not None:
            on_downloaded(done, len(keep))
        content_type = entry.get("content_type") or spec.default_content_type
        url = "" if is_data_uri(entry["url"]) else str(entry["url"])
        return ResultImage(data, str(content_type), index, flags[index], decoded, url)

    images = list(await asyncio.gather(*(fetch(i) for i in keep)))
    return EditResult(images=images, seed=output.get("seed"),
                      info=_info(spec, output, handle, flags, keep))


def remember_served_images(client: FalClient, result: EditResult, spec: CollectSpec,
                           created_after: float | None) -> None:
    """Remember which URL serves each result image's decoded pixels, so a later edit that gets
    exactly these pixels as a reference sends that URL: no encode, no upload, not a second JPEG
    generation. Only where the lifetime fal was asked to keep the files is known."""
    if not spec.output_lifetime or created_after is None:
        return
    served = [(image, served_identity(image.data, image.decoded)) for image in result.images
              if image.url]
    for image, identity in served:
        if identity is not None:
            image.served = ServedFile(image.url, client.hosts.queue,
                                      reuse_deadline(created_after, spec.output_lifetime))
            client.remember_served(identity, image.served)


async def decode_in_thread(decode: Decoder, data: bytes, request_id: str | None) -> Any:
    try:
        return await asyncio.to_thread(decode, data)
    except DecodeError as error:
        # The job ran and was billed: name it, so its result can still be found at fal.
        raise DecodeError(error.message, request_id=request_id) from None


def _nsfw_flags(output: dict[str, Any], count: int) -> list[bool]:
    raw = output.get("has_nsfw_concepts") or []
    return [bool(raw[i]) if i < len(raw) else False for i in range(count)]


def _apply_nsfw_policy(flags: list[bool], policy: str, request_id: str) -> list[int]:
    """Indices of the images to pass downstream; never a silent black frame."""
    flagged = [i for i, flag in enumerate(flags) if flag]
    if not flags:
        raise SafetyFilterError("fal returned no images for this request", request_id=request_id)
    if not flagged or policy == "keep":
        if flagged:
            logger.warning("fal flagged result image(s) %s as NSFW; kept as asked (nsfw_policy=keep)", flagged)
        return list(range(len(flags)))
    if policy == "error" or len(flagged) == len(flags):
        raise SafetyFilterError(
            f"fal's safety checker flagged {len(flagged)} of {len(flags)} result image(s) "
            "(they come back blank); rephrase the prompt or raise safety_tolerance",
            request_id=request_id)
    logger.warning("dropped %d of %d result images that fal flagged as NSFW", len(flagged), len(flags))
    return [i for i, flag in enumerate(flags) if not flag]


def _info(spec: CollectSpec, output: dict[str, Any], handle: RequestHandle,
          flags: list[bool], keep: list[int]) -> dict[str, Any]:
    return {
        "request_id": handle.request_id,
        "endpoint": spec.endpoint_id,
        "seed": output.get("seed"),
        "prompt": output.get("prompt", spec.instruction),
        "has_nsfw_concepts": flags,
        "dropped_nsfw_images": [i for i in range(len(flags)) if i not in keep],
        "timings": output.get("timings") or {},
        "num_images": len(keep),
        "estimated_cost_usd": spec.estimated_cost_usd,
        "cached": False,
    }
