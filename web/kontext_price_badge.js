// fal-kontext: a price badge on the pack's nodes, like the one ComfyUI's API nodes carry.
// It shows what one run is estimated to cost and follows the widgets live:
// - Kontext nodes: model x num_images (a price per image);
// - FLUX.2 Edit: fal bills every megapixel of output and references, so the badge adds the
//   output size (model, image_size, width/height) to one reference per connected socket at the
//   node's size limit (max_reference_megapixels), and says so: the browser cannot know the
//   references' real sizes or batch lengths before the run ("~$x/run · out 1 MP + 2 refs
//   ≤1 MP"). Without a size limit only the output is priced ("from $x/run ...").
// The prices come from the backend (GET /fal_kontext/prices, built from kontext/models.py and
// kontext/flux2_models.py); none is written here. Works on the classic canvas of frontends
// 1.27 and 1.58: a node's `badges` may hold functions, which LiteGraph calls on every draw.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PRICES_ROUTE = "/fal_kontext/prices";
// node ids are a workflow's identity: they never change
const PACK_NODE_PREFIXES = ["FalKontext", "FalFlux2"];
let priceTable = null; // {currency, nodes: {NodeId: {tier: {num_images: usd}}}, per_megapixel: {NodeId: rule}}
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

function isPackNode(nodeType) {
  return PACK_NODE_PREFIXES.some((prefix) => nodeType?.startsWith(prefix));
}

/** The badge text for this node's current widgets, or "" when there is no estimate. */
export function priceText(table, nodeType, model, numImages) {
  const usd = table?.nodes?.[nodeType]?.[model]?.[String(numImages)];
  if (typeof usd !== "number") return "";
  return `$${usd.toFixed(2)}/run`;
}

function dollars(usd) {
  // Per-megapixel prices move in half cents: three decimals, a trailing zero dropped.
  return `$${usd.toFixed(3).replace(/(\.\d\d)0$/, "$1")}`;
}

function megapixelText(pixels, rule) {
  return `${+(pixels / rule.megapixel_pixels).toFixed(2)} MP`;
}

/**
 * The FLUX.2 badge text: `widgets` holds model, image_size, width, height and
 * max_reference_megapixels; `references` is how many reference sockets are connected.
 * "" when the table has no rule for this node or model.
 */
export function megapixelPriceText(table, nodeType, widgets, references) {
  const rule = table?.per_megapixel?.[nodeType];
  const model = rule?.models?.[widgets.model];
  if (!model) return "";
  const preset = rule.presets[widgets.image_size];
  let output;
  if (widgets.image_size === rule.custom) output = Number(widgets.width) * Number(widgets.height);
  else if (widgets.image_size === rule.auto) output = rule.auto_pixels;
  else if (preset) output = preset[0] * preset[1];
  if (!(output > 0)) return "";
  const price = (pixels) =>
    model.first + model.further * (Math.max(1, Math.ceil(pixels / rule.megapixel_pixels)) - 1);
  const outputText = widgets.image_size === rule.auto
    ? `out auto ≈${megapixelText(output, rule)}` : `out ${megapixelText(output, rule)}`;
  const limit = Number(widgets.max_reference_megapixels ?? rule.default_max_reference_megapixels);
  if (!(limit > 0)) return `from ${dollars(price(output))}/run · ${outputText} + refs at full size`;
  const count = Math.max(1, references);
  const referencePixels = count * limit * rule.limit_pixels_per_megapixel;
  return `~${dollars(price(output + referencePixels))}/run · ${outputText} + ${count} ` +
    `ref${count > 1 ? "s" : ""} ≤${+limit.toFixed(2)} MP`;
}

function connectedReferences(node, rule) {
  return (node.inputs ?? []).filter((input) =>
    rule.reference_inputs.includes(input.name) && input.link != null).length;
}

function badgeText(node) {
  const nodeType = node.comfyClass ?? node.type;
  const rule = priceTable?.per_megapixel?.[nodeType];
  if (!rule) return priceText(priceTable, nodeType, widgetValue(node, "model"),
                              widgetValue(node, "num_images"));
  const widgets = Object.fromEntries(
    ["model", "image_size", "width", "height", "max_reference_megapixels"].map(
      (name) => [name, widgetValue(node, name)]));
  return megapixelPriceText(priceTable, nodeType, widgets, connectedReferences(node, rule));
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
    badge.text = badgeText(node);
    return badge;
  });
}

app.registerExtension({
  name: "fal-kontext.PriceBadge",
  // Awaited before any graph loads, so the table is there when a node is created: the Nodes 2.0
  // (Vue) view reads a node's badges once, when it mounts, and would miss one added later.
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (isPackNode(nodeData?.name)) await loadPriceTable();
  },
  nodeCreated(node) {
    if (isPackNode(node.comfyClass ?? node.type)) attachPriceBadge(node);
  },
});
