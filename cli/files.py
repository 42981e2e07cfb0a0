"""Reference files in, result files (plus a JSON sidecar with `info`) out."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..kontext.errors import InvalidInputError
from ..kontext.pipeline import EditResult, Reference

_MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXTENSION_BY_MIME = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


def load_reference(path: Path, label: str) -> Reference:
    """A reference from an image file, sent as it is (no re-encoding)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInputError(label, f"cannot read {path}: {error.strerror}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
    except (UnidentifiedImageError, OSError):
        image_format = None
    content_type = _MIME_BY_FORMAT.get(image_format or "")
    if content_type is None:
        raise InvalidInputError(label, f"{path} is not a PNG, JPEG or WebP image")
    return Reference(label=f"{label} ({path.name})", key=hashlib.sha256(data).hexdigest(),
                     encode=lambda: (data, content_type))


def write_results(result: EditResult, output_dir: Path) -> list[Path]:
    """Write each image and one `<name>.json` sidecar holding `info`; returns the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"kontext_{(result.info.get('request_id') or 'result')[:8]}_seed{result.seed}"
    paths = []
    for position, image in enumerate(result.images):
        path = output_dir / f"{stem}_{position}{_EXTENSION_BY_MIME.get(image.content_type, '.img')}"
        path.write_bytes(image.data)
        paths.append(path)
    sidecar = output_dir / f"{stem}.json"
    sidecar.write_text(json.dumps({**result.info, "files": [p.name for p in paths]}, indent=2))
    return [*paths, sidecar]
