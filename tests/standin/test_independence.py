"""The stand-in imitates fal from fal's published schema, never from the pack's own constants."""
from __future__ import annotations

import ast
from pathlib import Path

from fal_kontext.standin import schema

STANDIN_DIR = Path(schema.__file__).resolve().parent
PRODUCT_PACKAGES = {"client", "kontext", "nodes", "cli"}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
    return found


def test_no_standin_module_imports_the_pack_product_code():
    offenders = []
    for path in sorted(STANDIN_DIR.glob("*.py")):
        for level, module in _imported_modules(path):
            top = module.split(".")[0]
            absolute = module.startswith("fal_kontext.") and module.split(".")[1] in PRODUCT_PACKAGES
            if (level >= 2 and top in PRODUCT_PACKAGES) or absolute:
                offenders.append(f"{path.name}: {'.' * level}{module}")
    assert offenders == []


def test_schema_lists_the_four_published_kontext_endpoints_with_their_reference_field():
    assert {e.endpoint_id: e.reference_field for e in schema.ENDPOINTS.values()} == {
        "fal-ai/flux-pro/kontext/multi": "image_urls",
        "fal-ai/flux-pro/kontext/max/multi": "image_urls",
        "fal-ai/flux-pro/kontext": "image_url",
        "fal-ai/flux-pro/kontext/max": "image_url",
    }
    assert schema.SAFETY_TOLERANCES == ("1", "2", "3", "4", "5", "6")
    assert (schema.NUM_IMAGES_MIN, schema.NUM_IMAGES_MAX) == (1, 4)
