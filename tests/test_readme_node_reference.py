"""The README's node reference is exactly what INPUT_TYPES declares."""
from __future__ import annotations

from pathlib import Path

from fal_kontext.nodes.reference_table import (END, PRICES_END, PRICES_START, START,
                                               node_reference_markdown, price_comparison_markdown)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_node_reference_matches_input_types():
    text = README.read_text()
    block = text[text.index(START) + len(START):text.index(END)].strip()
    assert block == node_reference_markdown(), (
        "README node reference is stale: run python -m fal_kontext.nodes.reference_table README.md")


def test_every_price_in_the_readme_comes_from_the_models_table():
    from fal_kontext.kontext.flux2_models import FLUX2_MODELS
    from fal_kontext.kontext.models import ALL_MODELS
    text = README.read_text()
    for model in ALL_MODELS:
        assert f"`{model.endpoint_id}` | ${model.usd_per_image:.2f}" in text
    for model in FLUX2_MODELS.values():
        assert (f"`{model.endpoint_id}` | ${model.usd_first_megapixel:g} first MP + "
                f"${model.usd_further_megapixel:g} per further MP |") in text


def test_readme_price_comparison_is_computed_from_the_price_rules():
    text = README.read_text()
    block = text[text.index(PRICES_START) + len(PRICES_START):text.index(PRICES_END)].strip()
    assert block == price_comparison_markdown(), (
        "README price comparison is stale: run python -m fal_kontext.nodes.reference_table README.md")
    assert "| 1920x1080 out (custom), 2 photos | — | — | $0.075 | $0.16 | $0.20 |" in block
