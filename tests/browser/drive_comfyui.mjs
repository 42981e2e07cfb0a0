// Drives a running ComfyUI (with this pack and the stand-in fal server) in headless Chromium.
// Started by tests/browser/test_in_browser.py, once per frontend; it prints one JSON line of
// findings at the end, which the Python test checks. Screenshots go to OUT_DIR.
//
// Env: COMFY_URL, PACK_FOLDER (the pack's folder in custom_nodes), WORKFLOWS (JSON list of the
// UI workflow names), OUT_DIR, CHROMIUM (executable), PLAYWRIGHT_CORE (playwright-core's
// folder).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import path from "node:path";

const env = process.env;
const require = createRequire(import.meta.url);
const { chromium } = require(env.PLAYWRIGHT_CORE || "playwright-core");
const COMFY_URL = env.COMFY_URL;
const PACK_FOLDER = env.PACK_FOLDER;
const WORKFLOWS = JSON.parse(env.WORKFLOWS);
// The Kontext badge, cancel, failure and README picture follow the first Kontext workflow;
// the FLUX.2 badge the first FLUX.2 one (templates sort by name, FLUX.2 before Kontext).
const KONTEXT_WORKFLOW = WORKFLOWS.find((name) => name.startsWith("Kontext - "));
const FLUX2_WORKFLOW = WORKFLOWS.find((name) => name.startsWith("FLUX.2 - "));
const OUT_DIR = env.OUT_DIR;
const RUN_TIMEOUT_MS = 90_000;
mkdirSync(OUT_DIR, { recursive: true });

const findings = { console_errors: [], http_errors: [], templates: { thumbnails: [] }, runs: {},
                   badge: {}, flux2_badge: {}, views: {} };
const shot = async (page, name) => {
  const file = path.join(OUT_DIR, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function openComfyUI(browser) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on("console", (message) => {
    if (message.type() === "error") findings.console_errors.push(message.text().slice(0, 300));
  });
  page.on("pageerror", (error) => findings.console_errors.push(String(error.stack ?? error).slice(0, 600)));
  page.on("response", (response) => {
    const url = response.url();
    if (response.status() >= 400) findings.http_errors.push(`${response.status()} ${url}`);
    // The frontends fetch each thumbnail and show it from a blob: URL.
    if (decodeURI(url).includes(`/workflow_templates/${PACK_FOLDER}/`) && url.endsWith(".jpg")) {
      findings.templates.thumbnails.push(`${response.status()} ${url}`);
    }
  });
  await page.goto(COMFY_URL, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.app?.canvas, null, { timeout: 120_000 });
  await sleep(3000);
  await page.keyboard.press("Escape");
  await page.evaluate(async () => {
    // The minimap would cover the bottom right of the screenshots.
    await window.app.extensionManager.setting?.set?.("Comfy.Minimap.Visible", false);
  }).catch(() => {});
  await recordServerEvents(page);
  return page;
}

/** Record what the server tells the page: progress texts and how each prompt ended. */
function recordServerEvents(page) {
  return page.evaluate(() => {
    const api = window.app.api;
    window.__fal = { texts: [], ends: [] };
    api.addEventListener("progress_text", (event) => window.__fal.texts.push(event.detail));
    for (const name of ["execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(name, (event) => window.__fal.ends.push({ name, ...event.detail }));
    }
  });
}

async function templatesBrowser(page) {
  await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.BrowseTemplates"));
  await sleep(2500);
  // The pack's category: the folder name, under "Custom Nodes" (1.27) or "Extensions" (1.58).
  const category = page.getByText(PACK_FOLDER, { exact: true }).first();
  if (!(await category.isVisible())) { // 1.27: the sidebar's Templates button opens the browser
    await page.getByText("Templates", { exact: true }).first().click();
    await sleep(2500);
  }
  try {
    await category.click({ timeout: 10_000 });
  } catch (error) {
    findings.templates.category_click_error = String(error).slice(0, 200);
  }
  await sleep(4000);
  findings.templates.screenshot = await shot(page, "templates_browser");
  const bodyText = await page.evaluate(() => document.body.innerText);
  findings.templates.titles_seen = WORKFLOWS.filter((name) => bodyText.includes(name));
  await page.keyboard.press("Escape");
  await page.mouse.move(1590, 990); // no hover or focus highlight left on the sidebar
  await page.evaluate(() => document.activeElement?.blur?.());
  await sleep(800);
}

async function loadWorkflow(page, name) {
  await page.evaluate(async ({ folder, name }) => {
    const response = await fetch(`api/workflow_templates/${folder}/${encodeURIComponent(name)}.json`);
    await window.app.loadGraphData(await response.json(), true, true, name);
  }, { folder: PACK_FOLDER, name });
  await sleep(1500);
}

/** Are the Kontext node (all of it), its status line area and the result node on screen? */
async function viewCheck(page) {
  return page.evaluate(() => {
    const app = window.app;
    const canvas = app.canvas;
    const rect = canvas.canvas.getBoundingClientRect();
    const { scale, offset } = canvas.ds;
    const toScreen = (x, y) => [(x + offset[0]) * scale + rect.left, (y + offset[1]) * scale + rect.top];
    const inView = (node) => {
      const [x0, y0] = toScreen(node.pos[0], node.pos[1] - 30);
      const [x1, y1] = toScreen(node.pos[0] + node.size[0], node.pos[1] + node.size[1]);
      return x0 >= rect.left && y0 >= rect.top && x1 <= rect.right && y1 <= rect.bottom;
    };
    return app.graph._nodes.map((node) => ({ type: node.type, id: node.id, visible: inView(node),
                                             size: [...node.size], min_size: [...node.computeSize()],
                                             scale }));
  });
}

function kontextNodeId(page) {
  return page.evaluate(() => window.app.graph._nodes.find(
    (n) => n.type.startsWith("FalKontext") || n.type.startsWith("FalFlux2")).id);
}

async function setWidget(page, nodeId, name, value) {
  await page.evaluate(({ nodeId, name, value }) => {
    const node = window.app.graph.getNodeById(nodeId);
    const widget = node.widgets.find((w) => w.name === name);
    widget.value = value;
    widget.callback?.(value, window.app.canvas, node);
    window.app.graph.setDirtyCanvas(true, true);
  }, { nodeId, name, value });
  await sleep(400);
}

const badgeText = (page, nodeId) => page.evaluate(
  (id) => window.app.graph.getNodeById(id).falKontextPriceBadge?.text ?? null, nodeId);

async function queue(page) {
  const before = await page.evaluate(() => window.__fal.ends.length);
  await page.evaluate(() => window.app.queuePrompt(0, 1));
  return before;
}

async function waitForEnd(page, before) {
  const handle = await page.waitForFunction(
    (count) => window.__fal.ends.length > count && window.__fal.ends[window.__fal.ends.length - 1],
    before, { timeout: RUN_TIMEOUT_MS, polling: 250 });
  return handle.jsonValue();
}

const textsFor = (page, nodeId) => page.evaluate(
  (id) => window.__fal.texts.filter((t) => String(t.nodeId) === String(id)).map((t) => t.text), nodeId);

async function run(page, name, label, { midRunShot = null, seedOffset = 0, prompt = null, cancelAfterMs = null } = {}) {
  await loadWorkflow(page, name);
  const nodeId = await kontextNodeId(page);
  if (seedOffset) {
    const seed = await page.evaluate((id) => window.app.graph.getNodeById(id).widgets
      .find((w) => w.name === "seed").value, nodeId);
    await setWidget(page, nodeId, "seed", seed + seedOffset);
    await setWidget(page, nodeId, "control_after_generate", "fixed").catch(() => {});
  }
  if (prompt !== null) await setWidget(page, nodeId, "prompt", prompt);
  const textsBefore = (await textsFor(page, nodeId)).length;
  const before = await queue(page);
  const result = { workflow: name };
  if (midRunShot || cancelAfterMs !== null) {
    await page.waitForFunction(({ id, n }) => window.__fal.texts.filter(
      (t) => String(t.nodeId) === String(id)).length > n, { id: nodeId, n: textsBefore },
      { timeout: 30_000, polling: 100 });
    await sleep(cancelAfterMs ?? 1800);
    if (midRunShot) result.mid_run = await shot(page, midRunShot);
    if (cancelAfterMs !== null) await page.evaluate(() => window.app.api.interrupt());
  }
  const end = await waitForEnd(page, before);
  await sleep(1500); // let the last progress text arrive and the canvas redraw
  if (end.name === "execution_error") result.dialog = await shot(page, `${label}_dialog`);
  await page.keyboard.press("Escape"); // close an error dialog, if any, so the node is visible
  await sleep(500);
  result.end = end.name;
  result.texts = (await textsFor(page, nodeId)).slice(textsBefore);
  // What the node shows after the run: the frontend's own text widget (1.27 keeps it) or the
  // pack's final-status line under the node (drawn while that widget is gone, as in 1.58).
  result.shown_after = await page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const widget = node.widgets?.find((w) => w.name === "$$node-text-preview");
    return { frontend_widget: widget ? String(widget.value ?? "") : null,
             pack_line: node.falKontextFinalStatus ?? null };
  }, nodeId);
  result.screenshot = await shot(page, label);
  findings.runs[label] = result;
  return result;
}

const VUE_NODES_SETTING = "Comfy.VueNodes.Enabled";

async function vueNodesView(page) {
  const setVueNodes = (on) => page.evaluate(({ key, on }) =>
    window.app.extensionManager.setting.set(key, on), { key: VUE_NODES_SETTING, on });
  await setVueNodes(true);
  try {
    await page.reload({ waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => window.app?.graph && window.app?.canvas, null, { timeout: 120_000 });
    await sleep(3000);
    await page.keyboard.press("Escape");
    await recordServerEvents(page);
    await loadWorkflow(page, KONTEXT_WORKFLOW);
    const nodeId = await kontextNodeId(page);
    const nodeText = () => page.evaluate(
      (id) => document.querySelector(`[data-node-id="${id}"]`)?.innerText ?? null, nodeId);
    // Nodes 2.0 draws the widgets' names as HTML; without it only DOM widgets (the prompt) are.
    if (!(await nodeText())?.includes("num_images")) return; // this frontend has no Nodes 2.0
    const badgeShown = async () => (await nodeText()).match(/\$\d+\.\d\d\/run/)?.[0] ?? "";
    // Whether this view draws badges at all: the frontend's own node-source badge ("fal-kontext";
    // 1.27's experimental Nodes 2.0 draws none, for any node).
    findings.vue_draws_badges = (await nodeText()).includes(PACK_FOLDER);
    findings.vue_badge = {};
    for (const [model, count] of [["pro", 1], ["max", 3]]) {
      await setWidget(page, nodeId, "model", model);
      await setWidget(page, nodeId, "num_images", count);
      await sleep(600);
      findings.vue_badge[`${model}x${count}`] = await badgeShown();
    }
    await shot(page, "vue_nodes_badge");
    // A run in this view: the last status line stays on the node after the run.
    const before = await queue(page);
    const end = await waitForEnd(page, before);
    await sleep(1500);
    const texts = await textsFor(page, nodeId);
    const last = texts[texts.length - 1] ?? null;
    findings.vue_run = { end: end.name, last_text: last, shown: Boolean(last && (await nodeText()).includes(last)) };
    await shot(page, "vue_nodes_done");
  } finally {
    await setVueNodes(false);
  }
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const step = async (name, action) => {
  try {
    await action();
  } catch (error) {
    findings.errors ??= {};
    findings.errors[name] = String(error).slice(0, 500);
  }
};
try {
  const page = await openComfyUI(browser);
  findings.frontend_version = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  await step("templates", () => templatesBrowser(page));

  for (const name of WORKFLOWS) {
    await step(`view ${name}`, async () => {
      await loadWorkflow(page, name);
      findings.views[name] = { nodes: await viewCheck(page), screenshot: await shot(page, `loaded_${name}`) };
    });
  }

  // Price badge: follows num_images and model.
  await step("badge", async () => {
    await loadWorkflow(page, KONTEXT_WORKFLOW);
    const nodeId = await kontextNodeId(page);
    for (const [model, count] of [["pro", 1], ["pro", 3], ["max", 3]]) {
      await setWidget(page, nodeId, "model", model);
      await setWidget(page, nodeId, "num_images", count);
      findings.badge[`${model}x${count}`] = await badgeText(page, nodeId);
      await shot(page, `badge_${model}_x${count}`);
    }
  });

  // FLUX.2's badge: the per-megapixel price of the widgets' output size plus one reference per
  // connected socket at the size limit; it follows model, image_size and width/height.
  if (FLUX2_WORKFLOW) await step("flux2 badge", async () => {
    await loadWorkflow(page, FLUX2_WORKFLOW);
    const nodeId = await kontextNodeId(page);
    findings.flux2_badge.loaded = await badgeText(page, nodeId);
    await setWidget(page, nodeId, "model", "max");
    await setWidget(page, nodeId, "image_size", "custom");
    await setWidget(page, nodeId, "width", 1920);
    await setWidget(page, nodeId, "height", 1088);
    findings.flux2_badge.max_custom = await badgeText(page, nodeId);
    await shot(page, "flux2_badge");
  });

  // Every workflow runs as shipped (the first Kontext one with a mid-run picture).
  for (const name of WORKFLOWS) {
    await step(`run ${name}`, () => run(page, name, `done_${name}`,
                                        { midRunShot: name === KONTEXT_WORKFLOW ? "mid_run" : null }));
  }
  // A cancelled run and a failed one (the stand-in fails prompts tagged [policy]).
  await step("cancel", () => run(page, KONTEXT_WORKFLOW, "cancelled", { seedOffset: 7001, cancelAfterMs: 1500 }));
  await step("fail", () => run(page, KONTEXT_WORKFLOW, "failed", {
    seedOffset: 7002, prompt: "Put the duckling from image 2 on the t-shirt in image 1 [policy]" }));
  // The optional Nodes 2.0 view (Vue; frontend 1.58) draws nodes as HTML and reads badges once,
  // when a node mounts. Last, as it reloads the page; frontends without it report nothing.
  await step("vue view", () => vueNodesView(page));
} finally {
  await browser.close();
}
console.log(JSON.stringify(findings));
