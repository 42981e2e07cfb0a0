"""The price badge extension (web/kontext_price_badge.js) run in node against stubs of the
frontend's app/api modules, fed the backend's real price table. Skipped without node."""
from __future__ import annotations

import json

import pytest
from frontend_stubs import NODE, WEB, run_extension
from fal_kontext.kontext import flux2_models as f
from fal_kontext.nodes.price_route import price_table


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


def run_badge_script(tmp_path, runner: str) -> dict:
    """Run `runner` in node beside the extension, with the backend's real price table."""
    (tmp_path / "prices.json").write_text(json.dumps(price_table()))
    return run_extension(tmp_path, "kontext_price_badge.js", APP_STUB, API_STUB, runner,
                         "prices.json")


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_badge_is_there_when_the_node_is_created_and_follows_model_and_num_images(tmp_path):
    # The Nodes 2.0 (Vue) view reads a node's badges once, when it mounts: a badge added after
    # an await in nodeCreated never shows there.
    out = run_badge_script(tmp_path, RUNNER)
    usd = price_table()["nodes"]
    assert out["multi_pro_1"] == f"${usd['FalKontextMulti']['pro']['1']:.2f}/run" == "$0.04/run"
    assert out["edit_max_2"] == f"${usd['FalKontextEdit']['max']['2']:.2f}/run"
    assert out["multi_pro_4"] == f"${usd['FalKontextMulti']['pro']['4']:.2f}/run"
    assert out["multi_max_4"] == f"${usd['FalKontextMulti']['max']['4']:.2f}/run"
    assert out["other_badges"] == 0, "only the Kontext nodes get a badge"
    assert out["unknown_model"] == "", "no guess when the table has no price"
    assert out["requests"] == ["/fal_kontext/prices"], "the table is fetched once"


FLUX2_RUNNER = """
import { readFileSync } from "node:fs";
globalThis.priceTable = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { megapixelPriceText } = await import("./extensions/fal-kontext/kontext_price_badge.js");
const ext = globalThis.extension;
await ext.beforeRegisterNodeDef(function () {}, { name: "FalFlux2Edit" });
const widget = (name, value) => ({ name, value });
const node = { comfyClass: "FalFlux2Edit", badges: [],
  widgets: [widget("model", "pro"), widget("image_size", "auto"), widget("width", 512),
            widget("height", 512), widget("max_reference_megapixels", 1.0)],
  inputs: [{ name: "images", link: 1 }, { name: "image_2", link: null },
           { name: "image_3", link: null }, { name: "image_4", link: null }] };
ext.nodeCreated(node);
const text = () => node.badges[0]?.().text ?? null;
const set = (name, value) => { node.widgets.find((w) => w.name === name).value = value; };
const out = { created: text() };
node.inputs[1].link = 2;
out.two_refs = text();
set("model", "max"); set("image_size", "custom"); set("width", 1920); set("height", 1080);
out.max_custom = text();
set("model", "flex"); set("image_size", "square"); set("max_reference_megapixels", 0);
out.no_limit = text();
set("image_size", "landscape_16_9"); set("max_reference_megapixels", 4);
out.four_mp_refs = text();
out.unknown_model = megapixelPriceText(globalThis.priceTable, "FalFlux2Edit",
  { model: "ultra", image_size: "auto", max_reference_megapixels: 1 }, 1);
console.log(JSON.stringify(out));
"""


def expected_usd(tier: str, output: tuple[int, int], references: int, limit: float) -> str:
    """The backend's price for the badge's stated assumption, in the badge's format."""
    sizes = [(round(limit * 1_000_000), 1)] * references
    text = f"{f.estimate_cost_usd(f.FLUX2_MODELS[tier], output, sizes):.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_flux2_badge_prices_output_and_references_and_states_its_assumption(tmp_path):
    out = run_badge_script(tmp_path, FLUX2_RUNNER)
    assert out["created"] == f"~{expected_usd('pro', (1024, 1024), 1, 1.0)}/run · out auto ≈1 MP " \
                             "+ 1 ref ≤1 MP" == "~$0.045/run · out auto ≈1 MP + 1 ref ≤1 MP"
    assert out["two_refs"] == "~$0.06/run · out auto ≈1 MP + 2 refs ≤1 MP", "follows the sockets"
    assert out["max_custom"] == f"~{expected_usd('max', (1920, 1080), 2, 1.0)}/run · out 1.98 MP " \
                                "+ 2 refs ≤1 MP" == "~$0.16/run · out 1.98 MP + 2 refs ≤1 MP"
    assert out["no_limit"] == "from $0.05/run · out 0.25 MP + refs at full size"
    assert out["four_mp_refs"] == f"~{expected_usd('flex', (1024, 576), 2, 4.0)}/run · out " \
                                  "0.56 MP + 2 refs ≤4 MP" == "~$0.45/run · out 0.56 MP + 2 refs ≤4 MP"
    assert out["unknown_model"] == ""


def test_no_price_is_written_in_the_javascript():
    for script in WEB.glob("*.js"):
        text = script.read_text()
        for price in ("0.04", "0.08", "0.03", "0.015", "0.07", "0.05", "1048576", "1024 * 1024"):
            assert price not in text, f"{script.name} holds a price: read it from the backend"
