"""The Templates-browser thumbnails are diagrams of their workflows, drawn by
docs/make_template_thumbnails.py from the bundled samples: numbered references, the instruction,
a placeholder for the result (a stand-in output made the cards look like collages)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "make_template_thumbnails.py"
spec = importlib.util.spec_from_file_location("make_template_thumbnails", SCRIPT)
thumbnails = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = thumbnails  # its dataclasses look their module up there
spec.loader.exec_module(thumbnails)

NAMES = thumbnails.template_names()
HAVE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").is_file()


def describe(name: str):
    return thumbnails.describe(json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text()))


def test_every_ui_template_has_a_diagram():
    assert NAMES == sorted(path.stem for path in (ROOT / "workflows").glob("*.json"))


@pytest.mark.parametrize("name", NAMES)
def test_references_are_numbered_as_the_node_numbers_them(name):
    template = describe(name)
    assert [reference.number for reference in template.references] == \
        list(range(1, len(template.references) + 1))
    for reference in template.references:
        assert reference.picture.is_file() and reference.picture.parent.name == "inputs"
        assert reference.label and not reference.label.startswith("image")


@pytest.mark.parametrize("name", NAMES)
def test_the_caption_says_what_this_template_does(name):
    template = describe(name)
    workflow = json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text())
    node = next(node for node in workflow.values()
                if node["class_type"].startswith(tuple(thumbnails.FAMILIES)))
    count, variants = len(template.references), node["inputs"].get("num_images", 1)
    assert template.caption.startswith(f"{count} reference{'s' if count > 1 else ''} ")
    assert template.caption.endswith(f"{variants} variants" if variants > 1 else "1 edited image")
    assert template.instruction == node["inputs"]["prompt"]
    assert "side by side" not in template.caption and "stand-in" not in template.caption


@pytest.mark.skipif(not HAVE_FONT, reason="the committed thumbnails were drawn with DejaVu Sans")
@pytest.mark.parametrize("name", NAMES)
def test_the_committed_thumbnail_is_what_the_script_draws_now(name):
    # A workflow changed without `python docs/make_template_thumbnails.py` fails here.
    drawn = np.asarray(thumbnails.draw_template(name), dtype=np.float32)
    with Image.open(ROOT / "workflows" / f"{name}.jpg") as committed:
        shipped = np.asarray(committed.convert("RGB"), dtype=np.float32)
    assert drawn.shape == shipped.shape == (512, 512, 3)
    assert np.abs(drawn - shipped).mean() < 2.0, "stale thumbnail: rerun the script"
