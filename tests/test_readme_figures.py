"""The README's benchmark and reliability figures are exactly those of the generated reports."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "readme_figures.py"
spec = importlib.util.spec_from_file_location("readme_figures", SCRIPT)
readme_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_figures)


@pytest.mark.parametrize("name", sorted(readme_figures.BLOCKS))
def test_readme_block_matches_its_report(name):
    readme = readme_figures.README.read_text()
    assert readme_figures.readme_block(readme, name) == readme_figures.BLOCKS[name](), (
        "README figures are stale: run python docs/readme_figures.py")


def test_every_benchmark_target_has_a_verdict():
    block = readme_figures.benchmarks_block()
    for target in ("P1", "P2", "P3", "P4", "P5", "P6", "Scaling", "F1"):
        assert f"| {target} |" in block
