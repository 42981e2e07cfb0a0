// fal-kontext: keep a pack node's last status line ("Done · ...", "Cancelled · ...",
// "Failed · ...") in view after the run ends.
// The text comes from the backend (PromptServer.send_progress_text), shown by the frontend in a
// "$$node-text-preview" widget. Frontend 1.27 keeps that widget after the run; 1.58 removes it
// when the job ends (in the classic canvas and in the Nodes 2.0 view), so the story's ending
// vanished. After a run ends, this hands the node's last text back to the frontend as a
// progress_text event without a prompt id, which the frontend shows in its own widget again.
// Where that does not bring the widget back, it draws the text just under the node (classic
// canvas only); it never draws next to the frontend's widget.
//
// A final line belongs to one node of one run: it is kept under the prompt id and the node id,
// with the node object it was shown on, and dropped when another workflow is loaded. Node ids
// repeat across workflows (every template has a node 4), so a line looked up by id alone showed
// a failed run's words under a node of a workflow opened afterwards that never ran.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const FRONTEND_TEXT_WIDGET = "$$node-text-preview";
// node ids are a workflow's identity: they never change
const PACK_NODE_PREFIXES = ["FalKontext", "FalFlux2", "FalResultByRequestId"];
const isPackNode = (nodeType) => PACK_NODE_PREFIXES.some((prefix) => nodeType.startsWith(prefix));
const END_EVENTS = ["execution_success", "execution_error", "execution_interrupted"];

const finalLines = new Map(); // `${promptId}:${nodeId}` -> {promptId, nodeId, node, text}
let currentPromptId = null; // the prompt running now or the one that ran last; null: none shown

const lineKey = (promptId, nodeId) => `${promptId}:${nodeId}`;

/** The line `node` shows: of the current prompt, and recorded on this very node object. */
export function finalLineOf(node) {
  const line = finalLines.get(lineKey(currentPromptId, node.id));
  return line && line.node === node ? line : null;
}

/** Record a status text the backend sent for `nodeId` (progress_text carries no prompt id). */
export function recordStatusText(nodeId, text, graph = app.graph) {
  if (currentPromptId === null) return; // a workflow was loaded since the prompt started
  const node = graph?.getNodeById?.(nodeId);
  if (!isPackNode(node?.comfyClass ?? node?.type ?? "")) return;
  finalLines.set(lineKey(currentPromptId, node.id),
                 { promptId: currentPromptId, nodeId: String(node.id), node, text: String(text ?? "") });
}

/** A new prompt starts: its nodes' lines replace the last prompt's. */
export function promptStarted(promptId) {
  currentPromptId = promptId ?? null;
  finalLines.clear();
}

/** Another workflow is being loaded (or this one reloaded): no line carries over, and the
 * texts of a prompt still running belong to nodes no longer on screen. */
export function graphReplaced() {
  currentPromptId = null;
  finalLines.clear();
}

function wrap(ctx, text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    const candidate = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(candidate).width > width) {
      lines.push(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function drawFinalStatus(node, ctx, text) {
  const padding = 8;
  const lineHeight = 16;
  const width = node.size[0];
  ctx.save();
  ctx.font = "12px sans-serif";
  const lines = wrap(ctx, text, width - padding * 2).slice(0, 6);
  const top = node.size[1] + 6;
  const height = lines.length * lineHeight + padding;
  ctx.fillStyle = "rgba(20, 20, 20, 0.85)";
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(0, top, width, height, 6);
  else ctx.rect(0, top, width, height);
  ctx.fill();
  ctx.fillStyle = text.startsWith("Failed") ? "#ff9a9a" : "#e8e8e8";
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  lines.forEach((line, index) => ctx.fillText(line, padding, top + padding / 2 + index * lineHeight));
  ctx.restore();
}

const frontendShows = (node) => node.widgets?.some((widget) => widget.name === FRONTEND_TEXT_WIDGET);

/** Give each Kontext node of the graph in view its last text back, where the frontend dropped it. */
function restoreFinalLines() {
  for (const line of finalLines.values()) {
    if (!line.text || line.promptId !== currentPromptId) continue;
    if (app.graph?.getNodeById?.(line.nodeId) !== line.node || frontendShows(line.node)) continue;
    api.dispatchCustomEvent?.("progress_text", { nodeId: line.nodeId, text: line.text });
  }
  app.graph?.setDirtyCanvas?.(true, false);
}

app.registerExtension({
  name: "fal-kontext.FinalStatus",
  setup() {
    api.addEventListener("progress_text", ({ detail }) => {
      if (detail?.nodeId == null) return;
      recordStatusText(String(detail.nodeId), detail.text);
      app.graph?.setDirtyCanvas?.(true, false);
    });
    api.addEventListener("execution_start", ({ detail }) => promptStarted(detail?.prompt_id));
    // The frontend clears its widgets while handling these events (and again when the queue
    // reports the job gone), so the lines come back after them.
    for (const name of END_EVENTS) api.addEventListener(name, () => setTimeout(restoreFinalLines, 0));
    api.addEventListener("status", () => setTimeout(restoreFinalLines, 0));
  },
  // Called by both frontends before a workflow (a template, a file, another tab) is configured.
  beforeConfigureGraph() {
    graphReplaced();
  },
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!isPackNode(nodeData?.name ?? "")) return;
    const original = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx, ...rest) {
      const result = original?.call(this, ctx, ...rest);
      const text = finalLineOf(this)?.text;
      this.falKontextFinalStatus = text && !frontendShows(this) && !this.flags?.collapsed ? text : null;
      if (this.falKontextFinalStatus) drawFinalStatus(this, ctx, this.falKontextFinalStatus);
      return result;
    };
  },
});
