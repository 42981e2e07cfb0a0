// fal-kontext: a price badge on the Kontext nodes, like the one ComfyUI's API nodes carry.
// It shows what one run is estimated to cost (model x num_images) and follows the widgets live.
// The prices come from the backend (GET /fal_kontext/prices, built from kontext/models.py);
// none is written here. Works on the classic canvas of frontends 1.27 and 1.58: a node's
// `badges` may hold functions, which LiteGraph calls on every draw.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PRICES_ROUTE = "/fal_kontext/prices";
const KONTEXT_NODE_PREFIX = "FalKontext"; // node ids are a workflow's identity: they never change
let priceTable = null; // {currency, nodes: {NodeId: {tier: {num_images: usd}}}}
let priceTableRequest = null;

function loadPriceTable() {
  priceTableRequest ??= (async () => {
    try {
      const response = await api.fetchApi(PRICES_ROUTE, { cache: "no-store" });
      if (response.ok) priceTable = await response.json();
      else console.warn(`fal-kontext: ${PRICES_ROUTE} answered ${response.status}`);
    } catch (error) {
      console.warn("fal-kontext: price table not loaded", error);
    }
  })();
  return priceTableRequest;
}

function widgetValue(node, name) {
  return node.widgets?.find((widget) => widget.name === name)?.value;
}

/** The badge text for this node's current widgets, or "" when there is no estimate. */
export function priceText(table, nodeType, model, numImages) {
  const usd = table?.nodes?.[nodeType]?.[model]?.[String(numImages)];
  if (typeof usd !== "number") return "";
  return `$${usd.toFixed(2)}/run`;
}

// A minimal badge with the interface LiteGraph's drawBadges uses (height, getWidth, draw),
// for frontends that do not expose their LGraphBadge class.
class PriceBadge {
  constructor() {
    this.text = "";
    this.height = 20;
    this.fontSize = 12;
    this.padding = 6;
    this.fgColor = "#ffffff";
    this.bgColor = "#1f6f43";
  }
  getWidth(ctx) {
    if (!this.text) return 0;
    const font = ctx.font;
    ctx.font = `${this.fontSize}px sans-serif`;
    const width = ctx.measureText(this.text).width + this.padding * 2;
    ctx.font = font;
    return width;
  }
  draw(ctx, x, y) {
    if (!this.text) return;
    const width = this.getWidth(ctx);
    const { font, fillStyle, textBaseline, textAlign } = ctx;
    ctx.fillStyle = this.bgColor;
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(x, y, width, this.height, 5);
    else ctx.rect(x, y, width, this.height);
    ctx.fill();
    ctx.fillStyle = this.fgColor;
    ctx.font = `${this.fontSize}px sans-serif`;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.fillText(this.text, x + this.padding, y + this.height / 2);
    Object.assign(ctx, { font, fillStyle, textBaseline, textAlign });
  }
}

function attachPriceBadge(node) {
  if (!Array.isArray(node.badges) || node.falKontextPriceBadge) return;
  const badge = new PriceBadge();
  node.falKontextPriceBadge = badge;
  node.badges.push(() => {
    badge.text = priceText(priceTable, node.comfyClass ?? node.type,
                           widgetValue(node, "model"), widgetValue(node, "num_images"));
    return badge;
  });
}

app.registerExtension({
  name: "fal-kontext.PriceBadge",
  // Awaited before any graph loads, so the table is there when a node is created: the Nodes 2.0
  // (Vue) view reads a node's badges once, when it mounts, and would miss one added later.
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name?.startsWith(KONTEXT_NODE_PREFIX)) await loadPriceTable();
  },
  nodeCreated(node) {
    if ((node.comfyClass ?? node.type)?.startsWith(KONTEXT_NODE_PREFIX)) attachPriceBadge(node);
  },
});
