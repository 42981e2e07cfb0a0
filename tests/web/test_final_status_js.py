"""The final-status extension (web/kontext_final_status.js) run in node against stubs of the
frontend's app/api modules: a final line belongs to one node of one run. Skipped without node."""
from __future__ import annotations

import json

import pytest
from frontend_stubs import NODE, WEB, run_extension


APP_STUB = """export const app = {
  registerExtension(e) { globalThis.extension = e; },
  graph: null,
};
"""
API_STUB = """export const api = {
  listeners: {}, dispatched: [],
  addEventListener(name, f) { (this.listeners[name] ??= []).push(f); },
  emit(name, detail) { for (const f of this.listeners[name] ?? []) f({ detail }); },
  dispatchCustomEvent(name, detail) { this.dispatched.push({ name, ...detail }); this.emit(name, detail); },
};
"""
# A graph as LiteGraph builds it: loading a workflow makes new node objects, ids repeat.
RUNNER = """
const { app } = await import("./scripts/app.js");
const { api } = await import("./scripts/api.js");
await import("./extensions/fal-kontext/kontext_final_status.js");
const ext = globalThis.extension;
const proto = {};
ext.beforeRegisterNodeDef({ prototype: proto }, { name: "FalKontextMulti" });
const makeGraph = (ids) => {
  const nodes = ids.map((id) => Object.assign(Object.create(proto), {
    id, comfyClass: id === 9 ? "SaveImage" : "FalKontextMulti", size: [400, 600], flags: {}, widgets: [] }));
  return { nodes, getNodeById: (id) => nodes.find((n) => String(n.id) === String(id)) ?? null,
           setDirtyCanvas() {} };
};
const ctx = { save() {}, restore() {}, beginPath() {}, fill() {}, rect() {}, roundRect() {},
              fillText() {}, measureText: (t) => ({ width: t.length * 6 }) };
const shown = (id) => { const n = app.graph.getNodeById(id); n.onDrawForeground(ctx); return n.falKontextFinalStatus; };
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));
const out = {};
ext.setup();
app.graph = makeGraph([4, 9]);

// A run that fails: its node keeps the line after the end events.
api.emit("execution_start", { prompt_id: "p1" });
api.emit("progress_text", { nodeId: "4", text: "Generating" });
api.emit("progress_text", { nodeId: "4", text: "Failed · prompt is empty" });
api.emit("progress_text", { nodeId: "9", text: "not ours" });
api.emit("execution_error", { prompt_id: "p1" });
await settle();
out.after_failure = shown(4);
out.not_ours = shown(9) ?? null;
out.handed_back = api.dispatched.map((d) => d.text);

// Another workflow (a template) is opened: its node 4 never ran.
ext.beforeConfigureGraph?.();  // what the frontend calls before configuring a workflow
app.graph = makeGraph([4]);
api.dispatched.length = 0;
api.emit("status", {});
await settle();
out.fresh_workflow = shown(4);
out.handed_back_after_load = api.dispatched.length;

// A late text of a prompt that started before the load does not land on the new node 4.
api.emit("progress_text", { nodeId: "4", text: "Done · from the old prompt" });
out.late_text_of_old_prompt = shown(4);

// The new workflow runs: its own line shows; the next prompt replaces it.
api.emit("execution_start", { prompt_id: "p2" });
api.emit("progress_text", { nodeId: "4", text: "Done · 1 image" });
api.emit("execution_success", { prompt_id: "p2" });
await settle();
out.own_run = shown(4);
api.emit("execution_start", { prompt_id: "p3" });
out.next_prompt_started = shown(4);
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_a_final_line_belongs_to_one_node_of_one_run(tmp_path):
    out = run_extension(tmp_path, "kontext_final_status.js", APP_STUB, API_STUB, RUNNER)
    assert out["after_failure"] == "Failed · prompt is empty"
    assert out["not_ours"] is None
    assert out["handed_back"] == ["Failed · prompt is empty"], "given back to the frontend once"
    assert out["fresh_workflow"] is None, "a freshly loaded workflow shows no line"
    assert out["handed_back_after_load"] == 0
    assert out["late_text_of_old_prompt"] is None
    assert out["own_run"] == "Done · 1 image"
    assert out["next_prompt_started"] is None


def test_every_node_of_the_pack_keeps_its_final_line():
    """A node the extension does not know loses its "Done · ..." line in frontend 1.58."""
    import re

    from fal_kontext import NODE_CLASS_MAPPINGS

    source = (WEB / "kontext_final_status.js").read_text()
    prefixes = json.loads(re.search(r"const PACK_NODE_PREFIXES = (\[.*?\]);", source).group(1))
    assert all(any(node_id.startswith(prefix) for prefix in prefixes)
               for node_id in NODE_CLASS_MAPPINGS), (prefixes, list(NODE_CLASS_MAPPINGS))
