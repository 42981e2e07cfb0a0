"""The README's node reference (from INPUT_TYPES) and its price comparison of the two model
families (from the models tables), generated so that neither can drift from the code.

    python -m fal_kontext.nodes.reference_table README.md   # rewrite the marked blocks
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from ..kontext import flux2_models as f
from ..kontext import models as m
from .registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

START, END = "<!-- node-reference:start -->", "<!-- node-reference:end -->"
PRICES_START, PRICES_END = "<!-- family-prices:start -->", "<!-- family-prices:end -->"
_PHOTO = (1000, 1000)  # any photo as FLUX.2 sends it by default (at most 1 MP)
# (the run, its output size, its references as sent, whether Kontext makes it: ~1 MP only)
PRICE_SCENARIOS: tuple[tuple[str, tuple[int, int], tuple[tuple[int, int], ...], bool], ...] = (
    ("about 1 MP out, 1 photo", (1024, 1024), (_PHOTO,), True),
    ("about 1 MP out, 2 photos", (1024, 1024), (_PHOTO,) * 2, True),
    ("about 1 MP out, 4 photos", (1024, 1024), (_PHOTO,) * 4, True),
    ("about 1 MP out, 8 photos", (1024, 1024), (_PHOTO,) * 8, True),
    ("512x512 out (`square`), one 512x512 reference", (512, 512), ((512, 512),), False),
    ("1920x1080 out (custom), 2 photos", (1920, 1080), (_PHOTO,) * 2, False),
    ("2048x2048 out (custom, 4 MP), 2 photos", (2048, 2048), (_PHOTO,) * 2, False),
)


def _kind_and_range(kind: Any, options: dict[str, Any]) -> tuple[str, str, str]:
    if isinstance(kind, list):
        return "combo", " \\| ".join(f"`{v}`" for v in kind), f"`{options.get('default', kind[0])}`"
    if kind == "INT":
        return kind, f"{options['min']} .. {options['max']}", f"`{options['default']}`"
    if kind == "FLOAT":
        return kind, f"{options['min']:g} .. {options['max']:g}", f"`{options['default']:g}`"
    if kind == "BOOLEAN":
        return kind, "true \\| false", f"`{str(options['default']).lower()}`"
    default = options.get("default")
    return kind, "", "" if default in (None, "") else f"`{default}`"


def node_reference_markdown() -> str:
    parts = []
    for node_id, node_class in NODE_CLASS_MAPPINGS.items():
        spec = node_class.INPUT_TYPES()
        parts.append(f"#### {NODE_DISPLAY_NAME_MAPPINGS[node_id]} (`{node_id}`)\n\n"
                     f"{node_class.DESCRIPTION}\n\n"
                     "| input | type | range / choices | default | meaning |\n|---|---|---|---|---|")
        for section in ("required", "optional"):
            for name, (kind, options) in spec[section].items():
                type_name, value_range, default = _kind_and_range(kind, options)
                if section == "optional":
                    type_name += " (optional)"
                parts.append(f"| `{name}` | {type_name} | {value_range} | {default} | {options['tooltip']} |")
        parts.append("\n| output | type | meaning |\n|---|---|---|")
        for name, kind, tip in zip(node_class.RETURN_NAMES, node_class.RETURN_TYPES,
                                   node_class.OUTPUT_TOOLTIPS):
            parts.append(f"| `{name}` | {kind} | {tip} |")
        parts.append("")
    return "\n".join(parts).strip()


def price_comparison_markdown() -> str:
    """One run's price per model for typical runs; photos at the FLUX.2 node's default limit."""
    kontext = list(m.MULTI_MODELS.values())
    flux2 = list(f.FLUX2_MODELS.values())
    header = ["run", *(f"Kontext [{model.tier}]" for model in kontext),
              *(model.label for model in flux2)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for text, output, references, kontext_makes_it in PRICE_SCENARIOS:
        cells = [f"${m.estimate_cost_usd(model, 1):.2f}" if kontext_makes_it else "—"
                 for model in kontext]
        cells += [_dollars(f.estimate_cost_usd(model, output, references)) for model in flux2]
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _dollars(usd: float) -> str:
    text = f"{usd:.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)


def rewrite(readme: Path) -> None:
    text = readme.read_text()
    for start, end, render in ((START, END, node_reference_markdown),
                               (PRICES_START, PRICES_END, price_comparison_markdown)):
        block = f"{start}\n{render()}\n{end}"
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _, b=block: b, text,
                      flags=re.DOTALL)
    readme.write_text(text)


if __name__ == "__main__":
    rewrite(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
