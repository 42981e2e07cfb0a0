"""The README's node reference, generated from INPUT_TYPES so the two cannot drift.

    python -m fal_kontext.nodes.reference_table README.md   # rewrite the marked block
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from .registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

START, END = "<!-- node-reference:start -->", "<!-- node-reference:end -->"


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


def rewrite(readme: Path) -> None:
    text = readme.read_text()
    block = f"{START}\n{node_reference_markdown()}\n{END}"
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                             flags=re.DOTALL))


if __name__ == "__main__":
    rewrite(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
