"""Each node's interface as saved workflows see it, per release, and what breaks them.

A snapshot (`interfaces/<version>.json`) records, for every node a release exported: its inputs
in INPUT_TYPES order (section, type, combo choices, numeric range), the widget layout
`widgets_values` follows, its sockets, its outputs, and the retired input names it still
accepted. `incompatibilities` compares the running pack against a snapshot.

Record the snapshot of a release when cutting it (after bumping pyproject.toml):

    python tests/compat/node_interface.py            # writes interfaces/<pack version>.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for comfy_rules
from comfy_rules import CONTROL_SUFFIX, input_specs, socket_names, widget_slots  # noqa: E402

SNAPSHOTS = Path(__file__).resolve().parent / "interfaces"
RULE = ("Saved workflows depend on this; see README, 'Keeping saved workflows working' "
        "(tests/compat/node_interface.py)")


def describe_node(node_class, retired: list[dict[str, Any]]) -> dict[str, Any]:
    """One node's interface: what a saved UI workflow or API prompt relies on."""
    input_types = node_class.INPUT_TYPES()
    inputs = []
    for spec in input_specs(input_types):
        entry: dict[str, Any] = {"name": spec.name, "section": spec.section, "type": spec.type}
        if spec.type == "COMBO":
            entry["choices"] = list(spec.choices)
        if spec.type in ("INT", "FLOAT"):
            entry["min"], entry["max"] = spec.options.get("min"), spec.options.get("max")
        inputs.append(entry)
    return {
        "inputs": inputs,
        "widgets": widget_slots(input_types),
        "sockets": socket_names(input_types),
        "outputs": [{"name": name, "type": kind}
                    for name, kind in zip(node_class.RETURN_NAMES, node_class.RETURN_TYPES)],
        "retired": retired,
    }


def describe_pack() -> dict[str, Any]:
    """The interface of every node the running pack exports."""
    import importlib

    from fal_kontext import NODE_CLASS_MAPPINGS

    try:
        table = importlib.import_module("fal_kontext.nodes.compatibility").RETIRED_INPUTS
    except ModuleNotFoundError:  # releases before 0.2.0 had no retired inputs
        table = ()
    nodes = {}
    for node_id, node_class in NODE_CLASS_MAPPINGS.items():
        retired = [{"name": entry.name, "replaced_by": entry.replaced_by,
                    "retired_in": entry.retired_in}
                   for entry in table if entry.node_id == node_id]
        nodes[node_id] = describe_node(node_class, retired)
    return nodes


def load_snapshots() -> dict[str, dict[str, Any]]:
    """Release version -> its nodes' interfaces."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))["nodes"]
            for path in sorted(SNAPSHOTS.glob("*.json"))}


def _renames(interfaces: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(node_id, entry["name"]): entry["replaced_by"]
            for nodes in interfaces for node_id, node in nodes.items()
            for entry in node["retired"] if entry["replaced_by"]}


def _current_name(node_id: str, name: str, renames: dict[tuple[str, str], str]) -> str:
    base, control = (name[:-len(CONTROL_SUFFIX)], CONTROL_SUFFIX) if name.endswith(CONTROL_SUFFIX) \
        else (name, "")
    seen = set()
    while (node_id, base) in renames and base not in seen:
        seen.add(base)
        base = renames[(node_id, base)]
    return base + control


def incompatibilities(version: str, released: dict[str, Any], current: dict[str, Any],
                      history: list[dict[str, Any]] = ()) -> list[str]:
    """Every way `current` (describe_pack()) breaks workflows saved with release `version`.

    `history` holds every release's snapshot: renames recorded there are followed, and an
    input a release still accepted as retired may be gone since."""
    renames = _renames([*history, released, current])
    once_retired = {(node_id, entry["name"]) for nodes in [*history, released]
                    for node_id, node in nodes.items() for entry in node["retired"]}
    problems = []
    for node_id, old in released.items():
        new = current.get(node_id)
        if new is None:
            problems.append(f"{node_id}: the node id is gone; workflows saved with {version} use it")
            continue
        where = f"{node_id} (saved with {version})"
        accepted_now = {entry["name"] for entry in new["retired"]}
        problems += [f"{where}: {text}. {RULE}" for text in _node_problems(
            node_id, old, new, lambda name: _current_name(node_id, name, renames),
            lambda name: name in accepted_now or (node_id, name) in once_retired)]
    return problems


def _node_problems(node_id: str, old: dict[str, Any], new: dict[str, Any], rename, retired) -> list[str]:
    problems = []
    if new["outputs"][:len(old["outputs"])] != old["outputs"]:
        problems.append(f"outputs were {_pairs(old['outputs'])}, are now {_pairs(new['outputs'])}: "
                        "names, types and order of outputs never change (new ones go last)")
    now = {entry["name"]: entry for entry in new["inputs"]}
    for entry in old["inputs"]:
        name = rename(entry["name"])
        if name not in now:
            if not retired(entry["name"]):
                problems.append(f"input '{entry['name']}' is gone without a release that still "
                                "accepted it: list it in RETIRED_INPUTS (nodes/compatibility.py)")
            continue
        problems += _value_problems(entry, now[name])
    released_required = {entry["name"] for entry in old["inputs"] if entry["section"] == "required"}
    for entry in new["inputs"]:
        if entry["section"] == "required" and entry["name"] not in released_required:
            problems.append(f"required input '{entry['name']}' is new: a prompt saved before it "
                            "lacks it and ComfyUI refuses the prompt; make it optional, with a "
                            "default that keeps the old behaviour")
    for kind in ("widgets", "sockets"):
        problems += _order_problems(kind, [rename(name) for name in old[kind]], new[kind],
                                    old[kind], retired)
    return problems


def _value_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    name = old["name"]
    if new["type"] != old["type"]:
        return [f"input '{name}' was {old['type']}, is now {new['type']}"]
    problems = []
    if old["section"] == "optional" and new["section"] == "required":
        problems.append(f"input '{name}' was optional and is now required")
    gone = [choice for choice in old.get("choices", []) if choice not in new.get("choices", [])]
    if gone:
        problems.append(f"input '{name}' no longer offers {gone}: saved values would be refused")
    if "min" in old and (new["min"] > old["min"] or new["max"] < old["max"]):
        problems.append(f"input '{name}' range {old['min']}..{old['max']} narrowed to "
                        f"{new['min']}..{new['max']}: saved values would be refused")
    return problems


def _order_problems(kind: str, expected: list[str], now: list[str], saved: list[str],
                    retired) -> list[str]:
    for position, name in enumerate(expected):
        if position >= len(now):
            if retired(saved[position]):
                continue  # a retired trailing entry; its place is never given to another
            return [f"{kind} position {position + 1} ('{name}') is gone"]
        if now[position] != name:
            what = "widgets_values" if kind == "widgets" else "socket slots"
            return [f"{what} are positional: position {position + 1} was '{saved[position]}', is "
                    f"now '{now[position]}' (released order {saved}, now {now}); existing "
                    f"{kind} keep their order and new ones are only appended"]
    return []


def _pairs(outputs: list[dict[str, str]]) -> list[str]:
    return [f"{entry['name']}:{entry['type']}" for entry in outputs]


def render(version: str, nodes: dict[str, Any]) -> str:
    """A snapshot file: one input per line, so a review diff shows what changed."""
    lines = ["{", f'  "version": {json.dumps(version)},', '  "nodes": {']
    for index, (node_id, node) in enumerate(nodes.items()):
        lines.append(f"    {json.dumps(node_id)}: {{")
        fields = list(node.items())
        for field_index, (key, value) in enumerate(fields):
            comma = "," if field_index < len(fields) - 1 else ""
            if key in ("inputs", "outputs", "retired") and value:
                lines.append(f'      "{key}": [')
                lines += [f"        {json.dumps(item)}{',' if i < len(value) - 1 else ''}"
                          for i, item in enumerate(value)]
                lines.append(f"      ]{comma}")
            else:
                lines.append(f'      "{key}": {json.dumps(value)}{comma}')
        lines.append("    }" + ("," if index < len(nodes) - 1 else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record the node interfaces of a release.")
    parser.add_argument("--import-from", type=Path,
                        help="a folder holding an older `fal_kontext` package to describe instead")
    args = parser.parse_args(argv)
    if args.import_from:
        sys.path.insert(0, str(args.import_from.resolve()))
    import fal_kontext

    version = fal_kontext.__version__
    path = SNAPSHOTS / f"{version}.json"
    path.write_text(render(version, describe_pack()), encoding="utf-8")
    print(f"wrote {path} ({fal_kontext.__file__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
