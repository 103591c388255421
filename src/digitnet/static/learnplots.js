// The pictures of "How it learns": signed bars (what each neuron wants), the first
// layer's weight nudges as 28x28 pictures on one shared scale, the cosine of a
// mini-batch's gradient to the full one against the batch size (log axis), and the
// cost landscape as a heat map.  Each is drawn from the arrays the API answers, as they
// are; nothing here computes a gradient.
"use strict";

import { barRow, diverging, paintWeights } from "./colours.js";

const EDGE = "#8b95a7";
const DIM = "#a3acbb";
const LINE = "#f5c542";

export function signedBars(box, values, labels, name, mark = null) {
  // values (n,) as bars in box (a <div>), red up and blue down (barRow); labels (n,)
  // underneath (every one up to 16, else every other); mark: the index of a bar to
  // underline (the label).
  box.textContent = "";
  box.className = "sbars";
  box.style.setProperty("--n", values.length);
  const shown = (i) => (values.length <= 16 || i % 2 === 0 ? labels[i] : "");
  const [bars, under] = barRow(values, shown, mark);
  const order = values.map((v, i) => i).sort((a, b) => values[b] - values[a]);
  const up = order[0], down = order[order.length - 1];
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", `${name}: ${values.length} bars, up for more, down for less; `
    + `most up: ${labels[up]} (${signed(values[up])}), most down: ${labels[down]} (${signed(values[down])})`);
  box.append(bars, under);
}

export function signed(v, digits = 3) {
  // "+0.123" or "−0.123" (a real minus sign)
  const text = Math.abs(v).toPrecision(digits);
  return `${v < 0 ? "−" : "+"}${text}`;
}

export function nudgePictures(grid, rows, scale) {
  // One 28x28 picture per first-layer neuron (rows: n x 784, −∂C/∂W of layer 1), all
  // on one symmetric scale: full red at +scale, full blue at −scale.
  grid.textContent = "";
  rows.forEach((row, j) => {
    const figure = document.createElement("figure");
    figure.className = "nudge-cell";
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    canvas.setAttribute("aria-hidden", "true");
    paintWeights(canvas, row, scale);
    const caption = document.createElement("figcaption");
    caption.textContent = `${j + 1}`;
    figure.append(canvas, caption);
    grid.appendChild(figure);
  });
}

export function scaleKey(canvas, scale) {
  // The key to the pictures: −scale (blue) through 0 (white) to +scale (red).
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  for (let x = 0; x < w; x++) {
    const [r, gr, b] = diverging(((2 * x) / (w - 1) - 1) * scale, scale);
    g.fillStyle = `rgb(${r},${gr},${b})`;
    g.fillRect(x, 0, 1, h);
  }
}

function axes(g, box, xTicks, yTicks) {
  // A frame with tick labels: xTicks, yTicks as [[position px, text], ...].
  const { left, top, width, height } = box;
  g.strokeStyle = EDGE;
  g.lineWidth = 1;
  g.strokeRect(left, top, width, height);
  g.fillStyle = DIM;
  g.font = "12px system-ui, sans-serif";
  g.textAlign = "center";
  for (const [x, text] of xTicks) g.fillText(text, x, top + height + 14);
  g.textAlign = "right";
  for (const [y, text] of yTicks) g.fillText(text, left - 4, y + 4);
}

export function cosineChart(canvas, batches) {
  // cosine (−1..1, or 0..1 when none is negative) against the mini-batch size, log x:
  // batches [{size, cosine}, ...] in increasing size.
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  const box = { left: 40, top: 24, width: w - 64, height: h - 60 };
  const low = Math.min(0, ...batches.map((b) => b.cosine)) < 0 ? -1 : 0;
  const most = Math.max(...batches.map((b) => b.size));
  const x = (n) => box.left + (box.width * Math.log10(n)) / Math.log10(Math.max(10, most));
  const y = (c) => box.top + (box.height * (1 - c)) / (1 - low);
  const xTicks = [1, 10, 100, 1000, 10000].filter((n) => n <= most).map((n) => [x(n), n.toLocaleString("en")]);
  if (most > 10000) xTicks.push([x(most), most.toLocaleString("en")]);
  const yTicks = (low < 0 ? [-1, 0, 1] : [0, 0.5, 1]).map((c) => [y(c), String(c).replace("-", "−")]);
  axes(g, box, xTicks, yTicks);
  g.textAlign = "left";
  g.fillText("cosine to the full gradient (1: the same direction)", box.left, 14);
  g.textAlign = "center";
  g.fillText("images in the mini-batch (log scale)", box.left + box.width / 2, h - 4);
  g.setLineDash([2, 4]);
  g.beginPath();
  g.moveTo(box.left, y(1));
  g.lineTo(box.left + box.width, y(1));
  g.stroke();
  g.setLineDash([]);
  g.strokeStyle = g.fillStyle = LINE;
  g.lineWidth = 2;
  g.beginPath();
  batches.forEach((b, i) => (i ? g.lineTo(x(b.size), y(b.cosine)) : g.moveTo(x(b.size), y(b.cosine))));
  g.stroke();
  for (const b of batches) g.fillRect(x(b.size) - 3, y(b.cosine) - 3, 6, 6);
  canvas.dataset.points = String(batches.length);
}

function heat(t) {
  // [0, 1] -> a dark-purple to yellow colour (low cost dark, high cost bright)
  const stops = [[20, 12, 60], [90, 30, 130], [190, 60, 110], [245, 140, 60], [250, 235, 120]];
  const s = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(s)), f = s - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

export function heatKey(canvas) {
  const g = canvas.getContext("2d");
  for (let x = 0; x < canvas.width; x++) {
    g.fillStyle = `rgb(${heat(x / (canvas.width - 1)).join(",")})`;
    g.fillRect(x, 0, 1, canvas.height);
  }
}

export function landscapeMap(canvas, answer) {
  // answer.cost (rows β, columns α, β from −span at the bottom up) as cells coloured
  // from the lowest cost (dark) to the highest (bright), on a log scale; a ring at
  // α = β = 0, where the network is; its training path, when there is one.
  const { alphas, betas, cost, path } = answer;
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const flat = cost.flat();
  const lo = Math.log(Math.min(...flat)), hi = Math.log(Math.max(...flat));
  const cw = w / alphas.length, ch = h / betas.length;
  cost.forEach((row, r) => row.forEach((c, k) => {
    g.fillStyle = `rgb(${heat((Math.log(c) - lo) / Math.max(1e-12, hi - lo)).join(",")})`;
    g.fillRect(k * cw, h - (r + 1) * ch, Math.ceil(cw), Math.ceil(ch));
  }));
  const span = (values) => [values[0], values[values.length - 1]];
  const [a0, a1] = span(alphas), [b0, b1] = span(betas);
  const px = (a) => ((a - a0) / (a1 - a0)) * (w - cw) + cw / 2;
  const py = (b) => h - (((b - b0) / (b1 - b0)) * (h - ch) + ch / 2);
  const points = (path || []).map((p) => (Array.isArray(p) ? p : [p.alpha, p.beta]));
  if (points.length > 1) {
    g.strokeStyle = "#ffffff";
    g.lineWidth = 1.5;
    g.beginPath();
    points.forEach(([a, b], i) => (i ? g.lineTo(px(a), py(b)) : g.moveTo(px(a), py(b))));
    g.stroke();
  }
  g.lineWidth = 3;
  g.strokeStyle = "#5ee6ff";
  g.beginPath();
  g.arc(px(0), py(0), Math.max(6, cw * 0.8), 0, 2 * Math.PI);
  g.stroke();
  return { low: Math.exp(lo), high: Math.exp(hi) };
}
