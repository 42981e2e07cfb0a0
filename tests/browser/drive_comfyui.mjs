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
// A laptop's browser window: every shipped workflow must open whole in it.
const VIEWPORT = { width: 1400, height: 900 };
const STATUS_LINE_ROOM = 70; // the Kontext node's last status line, drawn under it
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
  const page = await browser.newPage({ viewport: VIEWPORT });
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
    window.__fal = { texts: [], ends: [], starts: [] };
    api.addEventListener("progress_text", (event) => window.__fal.texts.push(event.detail));
    api.addEventListener("execution_start", (event) => window.__fal.starts.push(event.detail));
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
    await page.getByRole("button", { name: "Templates", exact: true }).first().click();
    await sleep(2500);
  }
  try {
    // In a 900 px high window the category list scrolls: the pack's entry is near its end.
    await category.scrollIntoViewIfNeeded({ timeout: 10_000 });
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

/** The node library's top level: where the pack's category is filed (1.58 has sections). */
async function nodeLibrary(page) {
  const button = page.getByRole("button", { name: /Node Library/ }).first();
  await button.click();
  await sleep(1500);
  const lines = await page.evaluate(() => document.body.innerText.split("\n").map((l) => l.trim())
    .filter(Boolean));
  findings.node_library = { lines, screenshot: await shot(page, "node_library") };
  await button.click();
  await sleep(500);
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
  return page.evaluate((room) => {
    const app = window.app;
    const canvas = app.canvas;
    const rect = canvas.canvas.getBoundingClientRect();
    const { scale, offset } = canvas.ds;
    const toScreen = (x, y) => [(x + offset[0]) * scale + rect.left, (y + offset[1]) * scale + rect.top];
    const box = (node) => [node.pos[0], node.pos[1] - 30, node.pos[0] + node.size[0],
                           node.pos[1] + node.size[1] + (node.type.startsWith("FalKontext") ? room : 0)];
    const inView = (node) => {
      const [left, top, right, bottom] = box(node);
      const [x0, y0] = toScreen(left, top);
      const [x1, y1] = toScreen(right, bottom);
      return x0 >= rect.left && y0 >= rect.top && x1 <= rect.right && y1 <= rect.bottom;
    };
    // A point of a node is seen if the canvas (or the node's own text box) is on top there, not a
    // toolbar, tab bar, sidebar or minimap.
    const seen = (x, y) => {
      const element = document.elementFromPoint(x, y);
      return element === canvas.canvas || Boolean(element?.closest?.("textarea, .comfy-multiline-input"));
    };
    const coveredPoints = (node) => {
      const [left, top, right, bottom] = box(node);
      const xs = [left, (left + right) / 2, right], ys = [top, (top + bottom) / 2, bottom];
      const covered = [];
      for (const x of xs) for (const y of ys) {
        const [sx, sy] = toScreen(x, y);
        const px = sx + (x === left ? 4 : x === right ? -4 : 0), py = sy + (y === top ? 4 : y === bottom ? -4 : 0);
        if (!seen(px, py)) covered.push([Math.round(px), Math.round(py)]);
      }
      return covered;
    };
    const nodes = app.graph._nodes;
    const overlaps = [];
    nodes.forEach((a, i) => nodes.slice(i + 1).forEach((b) => {
      const [l1, t1, r1, b1] = box(a);
      const [l2, t2, r2, b2] = box(b);
      if (l1 < r2 && l2 < r1 && t1 < b2 && t2 < b1) overlaps.push([a.id, b.id]);
    }));
    return { scale, overlaps,
             nodes: nodes.map((node) => ({ type: node.type, id: node.id, visible: inView(node),
                                           covered: inView(node) ? coveredPoints(node) : null,
                                           title: node.title, size: [...node.size],
                                           min_size: [...node.computeSize()] })) };
  }, STATUS_LINE_ROOM);
}

/** In the Nodes 2.0 (Vue) view nodes are HTML: each node element whole in the window, none
 * over another. */
async function vueViewCheck(page) {
  return page.evaluate(({ width, height }) => {
    const elements = [...document.querySelectorAll("[data-node-id]")];
    const boxes = elements.map((element) => {
      const { left, top, right, bottom } = element.getBoundingClientRect();
      return { id: element.getAttribute("data-node-id"), left, top, right, bottom };
    });
    const overlaps = [];
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) {
        overlaps.push([a.id, b.id]);
      }
    }));
    // Whole in the window, and no bar, sidebar, toolbar or minimap over any corner or edge.
    const covered = [];
    for (const [index, b] of boxes.entries()) {
      for (const x of [b.left + 4, (b.left + b.right) / 2, b.right - 4]) {
        for (const y of [b.top + 4, (b.top + b.bottom) / 2, b.bottom - 4]) {
          if (!elements[index].contains(document.elementFromPoint(x, y))) covered.push([b.id, x, y]);
        }
      }
    }
    const hidden = boxes.filter((b) => b.left < 0 || b.top < 0 || b.right > width || b.bottom > height)
      .map((b) => b.id);
    return { count: boxes.length, hidden, covered, overlaps, boxes };
  }, VIEWPORT);
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

/** What a Kontext node shows under its widgets now: the frontend's text widget or the pack's line. */
async function shownLines(page, nodeId) {
  return page.evaluate(async (id) => {
    window.app.canvas.draw(true, true); // the pack's line is decided while the node is drawn
    await new Promise((resolve) => requestAnimationFrame(resolve));
    const node = window.app.graph.getNodeById(id);
    const widget = node.widgets?.find((w) => w.name === "$$node-text-preview");
    return { frontend_widget: widget ? String(widget.value ?? "") : null,
             pack_line: node.falKontextFinalStatus ?? null };
  }, nodeId);
}

/** Whether the frontend still draws the node as running: its progress bar, its green outline. */
function runningLook(page, nodeId) {
  return page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const outline = node.strokeStyles?.running?.call(node) ?? null;
    return { progress: node.progress ?? null, running_outline: outline ? outline.color ?? true : null };
  }, nodeId);
}

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
  result.exception_type = end.exception_type ?? null;
  result.running_after = await runningLook(page, nodeId);
  result.texts = (await textsFor(page, nodeId)).slice(textsBefore);
  // What the node shows after the run: the frontend's own text widget (1.27 keeps it) or the
  // pack's final-status line under the node (drawn while that widget is gone, as in 1.58).
  result.shown_after = await shownLines(page, nodeId);
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
    // Every workflow opens whole in the window here too (nodes are HTML, sized by the frontend).
    findings.vue_views = {};
    for (const name of WORKFLOWS) {
      await loadWorkflow(page, name);
      await sleep(1000);
      findings.vue_views[name] = { ...(await vueViewCheck(page)),
                                   nodes_in_graph: await page.evaluate(() => window.app.graph._nodes.length),
                                   screenshot: await shot(page, `vue_loaded_${name}`) };
    }
    await loadWorkflow(page, KONTEXT_WORKFLOW);
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
    // A failed run, then the same template opened fresh: no status line on the new node.
    await setWidget(page, nodeId, "prompt", "Put the duckling from image 2 on the t-shirt [policy]");
    const failedBefore = await queue(page);
    const failed = await waitForEnd(page, failedBefore);
    await sleep(1500);
    await page.keyboard.press("Escape");
    findings.vue_failed = { end: failed.name, shown: (await nodeText()).includes("Failed") };
    await shot(page, "vue_nodes_failed");
    await loadWorkflow(page, KONTEXT_WORKFLOW);
    findings.vue_after_failure_load = { shows_failed: (await nodeText()).includes("Failed"),
                                        screenshot: await shot(page, "vue_loaded_after_failure") };
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
  await step("node library", () => nodeLibrary(page));

  for (const name of WORKFLOWS) {
    await step(`view ${name}`, async () => {
      await loadWorkflow(page, name);
      findings.views[name] = { ...(await viewCheck(page)), screenshot: await shot(page, `loaded_${name}`) };
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
  // The same template opened fresh after that failure: its Kontext node has the same id as the
  // one that failed, and never ran, so it shows no status line.
  await step("load after failure", async () => {
    await loadWorkflow(page, KONTEXT_WORKFLOW);
    const nodeId = await kontextNodeId(page);
    findings.after_failure_load = { ...(await shownLines(page, nodeId)),
                                    screenshot: await shot(page, "loaded_after_failure") };
  });
  // An empty prompt is refused when queued: one line naming the input, and nothing starts.
  await step("refused at queue", async () => {
    await loadWorkflow(page, KONTEXT_WORKFLOW);
    const nodeId = await kontextNodeId(page);
    await setWidget(page, nodeId, "prompt", "   ");
    const startsBefore = await page.evaluate(() => window.__fal.starts.length);
    await page.evaluate(() => window.app.queuePrompt(0, 1)).catch(() => {});
    await sleep(3000);
    const message = "prompt is empty: write the edit instruction";
    const bodyText = () => page.evaluate(() => document.body.innerText);
    let text = await bodyText();
    if (!text.includes(message)) { // 1.58: a toast, whose "View details" opens the issues panel
      await page.getByRole("button", { name: "View details" }).first().click({ timeout: 5000 });
      await sleep(1000);
      await page.getByRole("button", { name: /^Info for / }).first().click({ timeout: 5000 });
      await sleep(1000);
      text = await bodyText();
    }
    findings.refused_at_queue = {
      started: (await page.evaluate(() => window.__fal.starts.length)) - startsBefore,
      times_shown: text.split(message).length - 1,
      screenshot: await shot(page, "refused_empty_prompt"),
    };
    await page.keyboard.press("Escape");
    if (await page.getByText("Workflow Overview", { exact: true }).isVisible()) {
      await page.getByRole("button", { name: "Toggle properties panel" }).first().click();
    }
    await sleep(500);
  });
  // The optional Nodes 2.0 view (Vue; frontend 1.58) draws nodes as HTML and reads badges once,
  // when a node mounts. Last, as it reloads the page; frontends without it report nothing.
  await step("vue view", () => vueNodesView(page));
} finally {
  await browser.close();
}
console.log(JSON.stringify(findings));
