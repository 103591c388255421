// The network diagram: the input picture, every neuron shaded by its activation, the
// strongest connections w·a for this input, and the ten outputs with their values.
//
// The SVG is laid out in CSS pixels (its viewBox is its own size), so text and touch
// targets have the sizes written here on every screen: labels at least 12 px, each
// neuron's target at least 24 px whenever the diagram is at least MIN_HEIGHT tall.
// The whole diagram is one Tab stop; the arrow keys move between neurons (up and down
// a layer, left and right across layers), Enter or Space pins the neuron, Escape
// (handled by the page) unpins it.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PAD = 6;          // margin inside the SVG
const TOP = 24;         // room for the layer names
const BOTTOM = 4;
const OUT_LABEL = 4;    // room right of the outputs for "9 1.00", in rem
const INPUT_LABEL = 22; // room under the input picture for its caption
export const MIN_TARGET = 24;
export const MIN_HEIGHT = TOP + BOTTOM + 16 * MIN_TARGET;
const SLACK = 4; // px of change in the diagram's box that do not rebuild it
export const LINK_COLOURS = { pos: "#ff7a5c", neg: "#5aa2ff" };

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

export function geometry(width, height, sizes, rem = 16) {
  // Where everything goes in a width x height diagram of a network of these sizes
  // (rem: the root font size in px, which the labels are sized in).
  const layers = sizes.length - 1;
  const tallest = Math.max(...sizes.slice(1));
  const usable = height - TOP - BOTTOM;
  const pitch = usable / tallest;
  const r = Math.max(5, Math.min(14, pitch * 0.36));
  const side = Math.max(28, Math.min(usable - INPUT_LABEL, width * 0.2, 280));
  const x0 = PAD + side;
  const last = width - PAD - OUT_LABEL * rem - r;
  const gap = (last - x0) / layers;
  const columns = sizes.slice(1).map((_, l) => x0 + gap * (l + 1));
  const ys = sizes.slice(1).map((n) => {
    const step = usable / n;
    return Array.from({ length: n }, (_, j) => TOP + step * (j + 0.5));
  });
  const steps = sizes.slice(1).map((n) => usable / n);
  return {
    width, height, r, side, columns, ys, steps, gap,
    inputX: PAD, inputY: TOP + Math.max(0, (usable - INPUT_LABEL - side) / 2),
    targetWidth: Math.max(MIN_TARGET, Math.min(gap * 0.8, 2 * r + 16)),
  };
}

export function shade(values, activation, isOutput) {
  // a layer's activations -> [0, 1] for the grey of each neuron
  if (isOutput || activation === "sigmoid") return values.map((v) => Math.max(0, Math.min(1, v)));
  if (activation === "tanh") return values.map((v) => (v + 1) / 2);
  const top = Math.max(1e-9, ...values);
  return values.map((v) => Math.max(0, v) / top);
}

export class Diagram {
  constructor(svg, { onPreview, onPin }) {
    this.svg = svg;
    this.onPreview = onPreview;
    this.onPin = onPin;
    this.model = null;
    this.view = null;          // the last render() argument
    this.marked = [];          // connections drawn on top of all others (mark())
    this.active = { layer: 1, index: 0 };  // the neuron holding the Tab stop
    // Chromium makes an <svg> with focusable content a Tab stop of its own, where the
    // arrow keys would scroll the page: the one Tab stop is the active neuron.
    svg.setAttribute("tabindex", "-1");
    svg.addEventListener("keydown", (e) => this.key(e));
    svg.addEventListener("focusout", (e) => {
      if (!svg.contains(e.relatedTarget)) this.onPreview(null, "focus");
    });
  }

  setModel(model) {
    this.model = model;
    this.built = null;  // another network may have other layers: build anew,
    this.view = null;   // without the activations of the old one
    this.layout();
  }

  layout() {
    // Rebuild for the current size of the SVG's box.
    if (!this.model) return;
    const svg = this.svg;
    const width = Math.max(200, Math.round(svg.clientWidth || svg.parentElement.clientWidth));
    const height = Math.max(MIN_HEIGHT, Math.round(svg.clientHeight || svg.parentElement.clientHeight));
    // A change of a few pixels (a caption elsewhere wrapping) keeps the drawing, scaled
    // by its viewBox: rebuilt under the pointer, it would lose a click half done.
    const near = (a, b) => Math.abs(a - b) < SLACK;
    if (this.built && near(this.built.width, width) && near(this.built.height, height)) return;
    const hadFocus = svg.contains(document.activeElement);
    const { sizes } = this.model;
    const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
    const g = geometry(width, height, sizes, rem);
    this.geo = g;
    this.built = { width, height };
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.innerHTML = "";
    const side = Math.round(Math.sqrt(sizes[0]));
    el("rect", { x: g.inputX - 1, y: g.inputY - 1, width: g.side + 2, height: g.side + 2,
      class: "frame" }, svg);
    el("g", { id: "links", "aria-hidden": "true" }, svg);  // under the input picture
    el("image", { id: "input-image", x: g.inputX, y: g.inputY, width: g.side, height: g.side,
      preserveAspectRatio: "none", "aria-hidden": "true" }, svg);
    this.text(g.inputX + g.side / 2, g.inputY + g.side + 16, `input: ${side}×${side}`, "label");
    const names = sizes.slice(1).map((n, l) => (l === sizes.length - 2 ? "output" : `layer ${l + 1}`));
    sizes.slice(1).forEach((count, l) => {
      const layer = l + 1;
      const x = g.columns[l];
      const group = el("g", { id: `layer-${layer}` }, svg);
      for (let j = 0; j < count; j++) {
        const y = g.ys[l][j];
        const node = el("g", { class: "neuron", "data-layer": layer, "data-index": j,
          role: "button", tabindex: "-1", "aria-pressed": "false" }, group);
        el("rect", { class: "hit", x: x - g.targetWidth / 2, y: y - g.steps[l] / 2,
          width: g.targetWidth, height: g.steps[l] }, node);
        el("circle", { class: "ring", cx: x, cy: y, r: g.r + 4 }, node);
        el("circle", { class: "cell", cx: x, cy: y, r: g.r, fill: "#000" }, node);
        const d = g.r + 3;  // the cross of a knocked-out neuron, shown by .off
        el("path", { class: "cross", d: `M${x - d},${y - d}L${x + d},${y + d}M${x - d},${y + d}L${x + d},${y - d}` }, node);
        node.addEventListener("pointerenter", (e) => {
          if (e.pointerType === "mouse" || e.pointerType === "pen") this.onPreview({ layer, index: j }, "hover");
        });
        node.addEventListener("pointerleave", () => this.onPreview(null, "hover"));
        // A click pins without taking the keyboard focus, which would preview.
        node.addEventListener("mousedown", (e) => e.preventDefault());
        node.addEventListener("click", () => {
          this.setActive(layer, j);
          this.onPin({ layer, index: j });
        });
        node.addEventListener("focus", () => {
          this.setActive(layer, j);
          this.onPreview({ layer, index: j }, "focus");
        });
      }
      if (layer === sizes.length - 1) {
        for (let j = 0; j < count; j++) {
          this.text(x + g.r + 7, g.ys[l][j], `${j}`, "out-label", `out-label-${j}`);
        }
      }
      this.text(x, 16, names[l], "label");
    });
    this.keepLabelsInside();
    this.setActive(this.active.layer, this.active.index);
    if (this.view) this.render(this.view);
    if (hadFocus) this.neuron(this.active.layer, this.active.index).focus();
  }

  text(x, y, content, cls, id) {
    const attrs = { x, y, class: cls };
    if (id) attrs.id = id;
    const node = el("text", attrs, this.svg);
    node.textContent = content;
    return node;
  }

  keepLabelsInside() {
    // Shift any label that would stick out of the SVG back inside it.
    for (const t of this.svg.querySelectorAll("text.label")) {
      const box = t.getBBox();
      const x = Number(t.getAttribute("x"));
      if (box.x < 1) t.setAttribute("x", x + (1 - box.x));
      else if (box.x + box.width > this.geo.width - 1) {
        t.setAttribute("x", x - (box.x + box.width - this.geo.width + 1));
      }
    }
  }

  neuron(layer, index) {
    return this.svg.querySelector(`#layer-${layer} .neuron[data-index="${index}"]`);
  }

  setActive(layer, index) {
    const previous = this.neuron(this.active.layer, this.active.index);
    if (previous) previous.setAttribute("tabindex", "-1");
    this.active = { layer, index };
    const node = this.neuron(layer, index);
    if (node) node.setAttribute("tabindex", "0");
  }

  key(event) {
    const node = event.target.closest && event.target.closest(".neuron");
    if (!node || !this.model) return;
    const sizes = this.model.sizes;
    let layer = Number(node.dataset.layer);
    let index = Number(node.dataset.index);
    const count = (l) => sizes[l];
    switch (event.key) {
      case "ArrowUp": index = Math.max(0, index - 1); break;
      case "ArrowDown": index = Math.min(count(layer) - 1, index + 1); break;
      case "Home": index = 0; break;
      case "End": index = count(layer) - 1; break;
      case "ArrowLeft":
      case "ArrowRight": {
        const next = Math.max(1, Math.min(sizes.length - 1, layer + (event.key === "ArrowLeft" ? -1 : 1)));
        index = Math.min(count(next) - 1, Math.round(((index + 0.5) * count(next)) / count(layer) - 0.5));
        layer = next;
        break;
      }
      case "Enter":
      case " ":
        event.preventDefault();
        this.onPin({ layer, index });
        return;
      default:
        return;
    }
    event.preventDefault();
    this.setActive(layer, index);
    this.neuron(layer, index).focus();
  }

  render(view) {
    // view: {acts: [a0, a1, ...] | null, digit, pinned, preview, inputUrl,
    //        knockouts: a Set of "layer.index" (optional)}
    this.view = view;
    if (!this.model || !this.geo) return;
    const { sizes, activation } = this.model;
    const last = sizes.length - 1;
    const image = this.svg.querySelector("#input-image");
    if (image && view.inputUrl) image.setAttribute("href", view.inputUrl);
    const same = (n, l, j) => Boolean(n) && n.layer === l && n.index === j;
    for (let l = 1; l <= last; l++) {
      const values = view.acts ? view.acts[l] : new Array(sizes[l]).fill(0);
      const shades = shade(values, activation, l === last);
      this.svg.querySelectorAll(`#layer-${l} .neuron`).forEach((node, j) => {
        const v = Math.round(255 * shades[j]);
        node.querySelector(".cell").setAttribute("fill", `rgb(${v},${v},${v})`);
        const pinned = same(view.pinned, l, j);
        node.classList.toggle("pinned", pinned);
        node.classList.toggle("preview", !pinned && same(view.preview, l, j));
        node.classList.toggle("guess", l === last && view.digit === j);
        const off = Boolean(view.knockouts && view.knockouts.has(`${l}.${j}`));
        node.classList.toggle("off", off);
        node.setAttribute("aria-pressed", String(pinned));
        const what = l === last ? `output ${j}` : `layer ${l}, neuron ${j + 1} of ${sizes[l]}`;
        const value = view.acts ? `, activation ${values[j].toFixed(3)}` : "";
        node.setAttribute("aria-label", `${what}${value}${off ? ", knocked out" : ""}`
          + `${l === last && view.digit === j ? ", the guess" : ""}`);
      });
    }
    for (let j = 0; j < sizes[last]; j++) {
      const label = this.svg.querySelector(`#out-label-${j}`);
      if (!label) continue;
      const v = view.acts ? view.acts[last][j] : null;
      label.textContent = v === null ? `${j}` : `${j}  ${v.toFixed(2)}`;
      label.classList.toggle("top", view.digit === j);
    }
    this.drawLinks(view.acts, view.pinned);
  }

  drawLinks(acts, pinned = null) {
    // The strongest contributions w·a for this input (|w| when there is none), and all
    // the connections of the pinned neuron on top, the others dimmed.
    const { weights } = this.model;
    const links = this.svg.querySelector("#links");
    links.innerHTML = "";
    const drawn = [];
    for (let l = 0; l < weights.length; l++) {
      const candidates = [];
      weights[l].forEach((row, j) => row.forEach((w, k) => this.candidate(candidates, acts, l, j, k)));
      candidates.sort((a, b) => Math.abs(b.c) - Math.abs(a.c));
      drawn.push(...candidates.slice(0, l === 0 ? 48 : 40));
    }
    this.lines(links, drawn, pinned || this.marked.length ? 0.3 : 1);
    if (this.marked.length) this.lines(links, this.marked, 1, "marked-link");
    if (!pinned) return;
    const incoming = [];
    const l = pinned.layer - 1;
    weights[l][pinned.index].forEach((w, k) => this.candidate(incoming, acts, l, pinned.index, k, true));
    incoming.sort((a, b) => Math.abs(b.c) - Math.abs(a.c));
    const outgoing = [];
    if (pinned.layer < weights.length) {
      weights[pinned.layer].forEach((row, j) => this.candidate(outgoing, acts, pinned.layer, j, pinned.index, true));
    }
    this.lines(links, [...incoming.slice(0, l === 0 ? 60 : incoming.length), ...outgoing], 1, "pin-link");
  }

  mark(links) {
    // Draw these connections [{l, j, k, w, c}] (k -> j into layer l + 1, coloured by the
    // sign of w, as thick as |c| allows) on top, the others dimmed; [] for none.
    this.marked = links;
    if (this.model && this.geo && this.view) this.drawLinks(this.view.acts, this.view.pinned);
  }

  candidate(list, acts, l, j, k, all = false) {
    // Connection k -> j into layer l + 1, with its contribution c = w·a (or w/20);
    // one that contributes nothing only if all.
    const w = this.model.weights[l][j][k];
    const c = acts ? w * acts[l][k] : w * 0.05;
    if (c !== 0 || all) list.push({ l, j, k, w, c });
  }

  lines(parent, drawn, opacity, cls = "") {
    // Each connection as a line, as thick as its share of the strongest one.
    const g = this.geo;
    const side = Math.round(Math.sqrt(this.model.sizes[0]));
    const cell = g.side / side;
    const max = Math.max(1e-9, ...drawn.map((d) => Math.abs(d.c)));
    for (const d of drawn) {
      const x1 = d.l === 0 ? g.inputX + ((d.k % side) + 0.5) * cell : g.columns[d.l - 1];
      const y1 = d.l === 0 ? g.inputY + (Math.floor(d.k / side) + 0.5) * cell : g.ys[d.l - 1][d.k];
      const strength = Math.abs(d.c) / max;
      el("line", { x1, y1, x2: g.columns[d.l], y2: g.ys[d.l][d.j], class: cls,
        stroke: d.w > 0 ? LINK_COLOURS.pos : LINK_COLOURS.neg,
        "stroke-width": (0.8 + 3 * strength).toFixed(2),
        "stroke-opacity": (opacity * (0.6 + 0.4 * strength)).toFixed(2) }, parent);
    }
  }
}
