"""The price badge extension (web/kontext_price_badge.js) run in node against stubs of the
frontend's app/api modules, fed the backend's real price table. Skipped without node."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fal_kontext.nodes.price_route import price_table

WEB = Path(__file__).resolve().parents[2] / "web"
NODE = shutil.which("node")

APP_STUB = "export const app = { registerExtension(e) { globalThis.extension = e; }, graph: null };\n"
API_STUB = """export const api = {
  requests: [],
  async fetchApi(route) {
    this.requests.push(route);
    return { ok: true, status: 200, json: async () => globalThis.priceTable };
  },
  addEventListener() {},
};
"""
RUNNER = """
import { readFileSync } from "node:fs";
globalThis.priceTable = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { priceText } = await import("./extensions/fal-kontext/kontext_price_badge.js");
const { api } = await import("./scripts/api.js");
const ext = globalThis.extension;
for (const name of ["FalKontextMulti", "FalKontextEdit", "KSampler"]) {
  await ext.beforeRegisterNodeDef(function () {}, { name });  // the app awaits this hook
}
const node = (type, model, count) => ({ comfyClass: type, badges: [], widgets: [
  { name: "model", value: model }, { name: "num_images", value: count }] });
const multi = node("FalKontextMulti", "pro", 1);
const edit = node("FalKontextEdit", "max", 2);
const other = node("KSampler", "pro", 1);
for (const n of [multi, edit, other]) ext.nodeCreated(n);  // not awaited: the badge is there at once
const text = (n) => n.badges[0]?.().text ?? null;
const out = { multi_pro_1: text(multi), edit_max_2: text(edit), other_badges: other.badges.length };
multi.widgets[1].value = 4;
out.multi_pro_4 = text(multi);
multi.widgets[0].value = "max";
out.multi_max_4 = text(multi);
out.unknown_model = priceText(globalThis.priceTable, "FalKontextMulti", "ultra", 1);
out.requests = api.requests;
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_badge_is_there_when_the_node_is_created_and_follows_model_and_num_images(tmp_path):
    # The Nodes 2.0 (Vue) view reads a node's badges once, when it mounts: a badge added after
    # an await in nodeCreated never shows there.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(APP_STUB)
    (tmp_path / "scripts" / "api.js").write_text(API_STUB)
    extension_dir = tmp_path / "extensions" / "fal-kontext"  # where ComfyUI serves WEB_DIRECTORY
    extension_dir.mkdir(parents=True)
    shutil.copy(WEB / "kontext_price_badge.js", extension_dir)
    (tmp_path / "run.mjs").write_text(RUNNER)
    table = price_table()
    (tmp_path / "prices.json").write_text(json.dumps(table))
    result = subprocess.run([NODE, "run.mjs", "prices.json"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    usd = table["nodes"]
    assert out["multi_pro_1"] == f"${usd['FalKontextMulti']['pro']['1']:.2f}/run" == "$0.04/run"
    assert out["edit_max_2"] == f"${usd['FalKontextEdit']['max']['2']:.2f}/run"
    assert out["multi_pro_4"] == f"${usd['FalKontextMulti']['pro']['4']:.2f}/run"
    assert out["multi_max_4"] == f"${usd['FalKontextMulti']['max']['4']:.2f}/run"
    assert out["other_badges"] == 0, "only the Kontext nodes get a badge"
    assert out["unknown_model"] == "", "no guess when the table has no price"
    assert out["requests"] == ["/fal_kontext/prices"], "the table is fetched once"


def test_no_price_is_written_in_the_javascript():
    for script in WEB.glob("*.js"):
        text = script.read_text()
        for price in ("0.04", "0.08", "0.03", "0.015", "0.07", "0.05", "1048576", "1024 * 1024"):
            assert price not in text, f"{script.name} holds a price: read it from the backend"
