"""The guard: no change to an existing node may break a workflow saved with any release.

Every release's node interfaces are snapshotted in `interfaces/<version>.json`; the running pack
is compared with each. The rule is in the README ("Keeping saved workflows working").
"""
from __future__ import annotations

import copy
import json

import pytest

from comfy_rules import widget_slots
from fal_kontext.nodes import compatibility
from fal_kontext.version import pack_version
from node_interface import (RULE, SNAPSHOTS, describe_pack, incompatibilities, load_snapshots,
                            render)

SNAPSHOT_VERSIONS = sorted(load_snapshots())


def _guard(current=None) -> list[str]:
    history = load_snapshots()
    current = describe_pack() if current is None else current
    return [problem for version, released in history.items()
            for problem in incompatibilities(version, released, current, list(history.values()))]


def test_every_release_has_a_snapshot_starting_with_the_first():
    assert SNAPSHOT_VERSIONS[0] == "0.1.0"
    assert pack_version() in SNAPSHOT_VERSIONS, (
        f"no interfaces/{pack_version()}.json: record it when cutting the release "
        "(python tests/compat/node_interface.py)")


@pytest.mark.parametrize("version", SNAPSHOT_VERSIONS)
def test_snapshots_are_as_the_recorder_writes_them(version):
    """Hand edits would make the guard compare against something no release had."""
    path = SNAPSHOTS / f"{version}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == version
    assert path.read_text(encoding="utf-8") == render(version, data["nodes"])
    for node_id, node in data["nodes"].items():
        declared = {section: {entry["name"]: _declaration(entry) for entry in node["inputs"]
                              if entry["section"] == section} for section in ("required", "optional")}
        assert widget_slots(declared) == node["widgets"], node_id


def _declaration(entry: dict) -> tuple:
    return (entry["choices"] if entry["type"] == "COMBO" else entry["type"], {})


def test_the_pack_keeps_every_released_interface():
    problems = _guard()
    assert not problems, "\n".join(problems)


# --- the guard fails on every kind of break ---------------------------------------------------


def _mutated(change) -> dict:
    current = copy.deepcopy(describe_pack())
    change(current["FalKontextMulti"])
    return current


def _add_required(node):
    node["inputs"].insert(3, {"name": "steps", "section": "required", "type": "INT", "min": 1,
                              "max": 50})
    node["widgets"].insert(2, "steps")


def _swap_widgets(node):
    widgets = node["widgets"]
    i, j = widgets.index("num_images"), widgets.index("guidance_scale")
    widgets[i], widgets[j] = widgets[j], widgets[i]


def _insert_optional_widget_in_the_middle(node):
    node["widgets"].insert(5, "new_thing")
    node["inputs"].append({"name": "new_thing", "section": "optional", "type": "BOOLEAN"})


def _make_optional_required(node):
    entry = next(e for e in node["inputs"] if e["name"] == "reference_encoding")
    entry["section"] = "required"


def _drop_choice(node):
    entry = next(e for e in node["inputs"] if e["name"] == "aspect_ratio")
    entry["choices"].remove("21:9")


def _narrow_range(node):
    entry = next(e for e in node["inputs"] if e["name"] == "timeout_seconds")
    entry["max"] = 1800


def _change_type(node):
    entry = next(e for e in node["inputs"] if e["name"] == "timeout_seconds")
    entry["type"], entry["max"] = "FLOAT", 3600.0


def _rename_output(node):
    node["outputs"][2]["name"] = "details"


def _reorder_outputs(node):
    node["outputs"].reverse()


def _remove_socket(node):
    node["inputs"] = [e for e in node["inputs"] if e["name"] != "image_3"]
    node["sockets"].remove("image_3")


def _remove_last_widget_unannounced(node):
    node["inputs"] = [e for e in node["inputs"] if e["name"] != "reference_encoding"]
    node["widgets"].remove("reference_encoding")


def _rename_required_widget(node):
    entry = next(e for e in node["inputs"] if e["name"] == "guidance_scale")
    entry["name"] = "guidance"
    node["widgets"][node["widgets"].index("guidance_scale")] = "guidance"
    node["retired"] = [{"name": "guidance_scale", "replaced_by": "guidance", "retired_in": "9.9.9"}]


BREAKS = {
    "a new required input": (_add_required, "required input 'steps' is new"),
    "two widgets swapped": (_swap_widgets, "widgets_values are positional"),
    "a widget inserted before others": (_insert_optional_widget_in_the_middle,
                                        "widgets_values are positional"),
    "an optional input made required": (_make_optional_required, "was optional and is now required"),
    "a combo choice removed": (_drop_choice, "no longer offers ['21:9']"),
    "a range narrowed": (_narrow_range, "narrowed"),
    "a type changed": (_change_type, "was INT, is now FLOAT"),
    "an output renamed": (_rename_output, "outputs were"),
    "outputs reordered": (_reorder_outputs, "outputs were"),
    "a socket removed": (_remove_socket, "input 'image_3' is gone"),
    "an input removed without retiring it": (_remove_last_widget_unannounced,
                                            "input 'reference_encoding' is gone"),
    "a required input renamed": (_rename_required_widget, "required input 'guidance' is new"),
}


@pytest.mark.parametrize("change,expected", BREAKS.values(), ids=BREAKS.keys())
def test_the_guard_names_each_break_and_points_at_the_rule(change, expected):
    problems = _guard(_mutated(change))
    assert any(expected in problem for problem in problems), problems
    assert all(RULE in problem and "FalKontextMulti" in problem for problem in problems)


def test_a_vanished_node_id_is_a_break():
    current = describe_pack()
    del current["FalKontextEdit"]
    assert any("FalKontextEdit: the node id is gone" in p for p in _guard(current))


# --- what the guard allows ---------------------------------------------------------------------


def _append_optional_widget(node):
    node["inputs"].append({"name": "new_thing", "section": "optional", "type": "BOOLEAN"})
    node["widgets"].append("new_thing")


def _append_output(node):
    node["outputs"].append({"name": "mask", "type": "MASK"})


def _widen(node):
    next(e for e in node["inputs"] if e["name"] == "num_images")["max"] = 8
    next(e for e in node["inputs"] if e["name"] == "model")["choices"].append("ultra")


def _rename_optional_widget_in_place(node):
    entry = next(e for e in node["inputs"] if e["name"] == "reference_encoding")
    entry["name"] = "reference_format"
    node["widgets"][-1] = "reference_format"
    node["retired"] = [{"name": "reference_encoding", "replaced_by": "reference_format",
                        "retired_in": "9.9.9"}]


def _retire_last_widget(node):
    node["inputs"] = [e for e in node["inputs"] if e["name"] != "reference_encoding"]
    node["widgets"].remove("reference_encoding")
    node["retired"] = [{"name": "reference_encoding", "replaced_by": None, "retired_in": "9.9.9"}]


ALLOWED = {
    "an optional widget appended": _append_optional_widget,
    "an output appended": _append_output,
    "a range widened and a choice added": _widen,
    "an optional widget renamed in place, old name retired": _rename_optional_widget_in_place,
    "the last widget retired": _retire_last_widget,
}


@pytest.mark.parametrize("change", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_guard_allows_compatible_changes(change):
    assert _guard(_mutated(change)) == []


def test_a_retired_widget_slot_is_never_given_to_a_new_widget():
    def retire_then_reuse(node):
        _retire_last_widget(node)
        _append_optional_widget(node)
    assert any("position 17 was 'reference_encoding'" in p for p in _guard(_mutated(retire_then_reuse)))


def test_the_guard_sees_the_real_node_classes(monkeypatch):
    """Wired to INPUT_TYPES, not only to the dicts above: a widget added since 0.1.0 that were
    required again would fail the guard."""
    monkeypatch.setitem(compatibility.RELEASED_WIDGETS, "FalKontextMulti",
                        (*compatibility.RELEASED_WIDGETS["FalKontextMulti"], "reference_encoding"))
    problems = _guard()
    assert any("FalKontextMulti (saved with 0.1.0): required input 'reference_encoding' is new"
               in problem for problem in problems), problems
