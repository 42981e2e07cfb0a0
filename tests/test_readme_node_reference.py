"""The README's node reference is exactly what INPUT_TYPES declares."""
from __future__ import annotations

from pathlib import Path

from fal_kontext.nodes.reference_table import END, START, node_reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_node_reference_matches_input_types():
    text = README.read_text()
    block = text[text.index(START) + len(START):text.index(END)].strip()
    assert block == node_reference_markdown(), (
        "README node reference is stale: run python -m fal_kontext.nodes.reference_table README.md")


def test_every_price_in_the_readme_comes_from_the_models_table():
    from fal_kontext.kontext.models import ALL_MODELS
    text = README.read_text()
    for model in ALL_MODELS:
        assert f"`{model.endpoint_id}` | ${model.usd_per_image:.2f}" in text
