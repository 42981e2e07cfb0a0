// fal-kontext: keep a Kontext node's last status line ("Done · ...", "Cancelled · ...",
// "Failed · ...") in view after the run ends.
// The text comes from the backend (PromptServer.send_progress_text), shown by the frontend in a
// "$$node-text-preview" widget. Frontend 1.27 keeps that widget after the run; 1.58 removes it
// when the job ends, so the story's ending vanished. While the frontend's own widget is absent,
// this draws the node's last text just under the node; it never draws next to that widget.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const FRONTEND_TEXT_WIDGET = "$$node-text-preview";
const KONTEXT_NODE_PREFIX = "FalKontext"; // node ids are a workflow's identity: they never change
const lastStatus = new Map(); // node id -> last progress text of the current or last prompt

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

app.registerExtension({
  name: "fal-kontext.FinalStatus",
  setup() {
    api.addEventListener("progress_text", ({ detail }) => {
      if (detail?.nodeId == null) return;
      lastStatus.set(String(detail.nodeId), String(detail.text ?? ""));
      app.graph?.setDirtyCanvas?.(true, false);
    });
    api.addEventListener("execution_start", () => lastStatus.clear());
  },
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith(KONTEXT_NODE_PREFIX)) return;
    const original = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx, ...rest) {
      const result = original?.call(this, ctx, ...rest);
      const text = lastStatus.get(String(this.id));
      const frontendShowsIt = this.widgets?.some((widget) => widget.name === FRONTEND_TEXT_WIDGET);
      this.falKontextFinalStatus = text && !frontendShowsIt && !this.flags?.collapsed ? text : null;
      if (this.falKontextFinalStatus) drawFinalStatus(this, ctx, this.falKontextFinalStatus);
      return result;
    };
  },
});
