"""The baseline: what peer node packs do with fal's official Python client.

Tensor -> Pillow the ComfyUI way, PNG at Pillow's default settings, references encoded and
uploaded one after another with `AsyncClient.upload`, `subscribe` with its default polling
(0.1 s), results downloaded and decoded with Pillow -> numpy -> torch.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

import httpx
import numpy as np
import torch
from PIL import Image

from fal_kontext.kontext.models import MULTI_MODELS

ENDPOINT = MULTI_MODELS["pro"].endpoint_id


def tensor_to_png(frame: torch.Tensor) -> bytes:
    """ComfyUI's save-image idiom, then Pillow's default PNG (zlib level 6)."""
    image = Image.fromarray((frame.cpu().numpy() * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_to_tensor(data: bytes) -> torch.Tensor:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return torch.from_numpy(np.array(image).astype(np.float32) / 255.0)[None,]


async def peer_edit(fal, references: Sequence[torch.Tensor],
                    arguments: dict[str, Any]) -> tuple[torch.Tensor, str]:
    """One edit the way peers write it; returns (IMAGE batch, fal request id)."""
    urls = []
    for batch in references:
        for frame in batch:
            urls.append(await fal.upload(tensor_to_png(frame), "image/png"))
    request_ids: list[str] = []
    result = await fal.subscribe(ENDPOINT, {**arguments, "image_urls": urls},
                                 on_enqueue=request_ids.append)
    frames = []
    async with httpx.AsyncClient() as http:
        for entry in result["images"]:
            response = await http.get(entry["url"])
            response.raise_for_status()
            frames.append(png_to_tensor(response.content))
    return torch.cat(frames), request_ids[0]
