// Colours the page shares: weights and other signed values, as in the video.
"use strict";

export function diverging(value, scale) {
  // blue for negative, white at zero, red for positive (as in the video)
  const t = Math.max(-1, Math.min(1, value / (scale || 1)));
  const [r, g, b] = t < 0 ? [58, 134, 255] : [228, 87, 46];
  const k = Math.abs(t);
  return [255 + (r - 255) * k, 255 + (g - 255) * k, 255 + (b - 255) * k].map(Math.round);
}

export function paintWeights(canvas, W, scale = Math.max(1e-9, ...W.map(Math.abs))) {
  // One neuron's incoming weights (784,) as a 28x28 picture, full colour at |w| = scale
  // (by default its largest |w|).
  const side = Math.round(Math.sqrt(W.length));
  const square = side * side === W.length;
  canvas.width = square ? side : W.length;
  canvas.height = square ? side : 1;
  const g = canvas.getContext("2d");
  const image = g.createImageData(canvas.width, canvas.height);
  W.forEach((w, i) => image.data.set([...diverging(w, scale), 255], 4 * i));
  g.putImageData(image, 0, 0);
  return { side, square };
}

export function barRow(values, labelOf, mark = null) {
  // values (n,) as bars: red up for a positive value, blue down for a negative one, as
  // tall as |v| over the largest |v|; labelOf(i) the text under bar i ("" for none),
  // the label of bar `mark` underlined.  Returns [bars, labels], two <div>s.
  const scale = Math.max(1e-12, ...values.map(Math.abs));
  const bars = document.createElement("div");
  bars.className = "wbars";
  const labels = document.createElement("div");
  labels.className = "wbar-labels";
  labels.setAttribute("aria-hidden", "true");
  values.forEach((v, i) => {
    const bar = document.createElement("span");
    bar.className = `wbar ${v > 0 ? "up" : "down"}`;
    bar.dataset.value = v.toPrecision(3);
    bar.style.setProperty("--h", (Math.abs(v) / scale).toFixed(3));
    bars.appendChild(bar);
    const label = document.createElement("span");
    label.textContent = labelOf(i);
    if (i === mark) label.className = "mark";
    labels.appendChild(label);
  });
  return [bars, labels];
}

export function weightBars(box, W, name) {
  // A neuron's incoming weights from a layer of neurons as labelled bars in box (a
  // <div>), one bar per neuron below, in its order (barRow); the neurons' numbers
  // (from 1) underneath: each of up to 10, else the first and every 2nd (up to 30) or
  // 5th.
  box.textContent = "";
  box.style.setProperty("--n", W.length);
  const every = W.length <= 10 ? 1 : W.length <= 30 ? 2 : 5;
  const [bars, labels] = barRow(W, (i) => (i === 0 || (i + 1) % every === 0 ? String(i + 1) : ""));
  const most = (sign) => W.reduce((best, w, i) => (sign * w > sign * W[best] ? i : best), 0);
  const up = most(1), down = most(-1);
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", `${name}: one bar per neuron of the layer below; strongest `
    + `positive weight ${W[up].toFixed(2)} from neuron ${up + 1}, strongest negative `
    + `${W[down].toFixed(2)} from neuron ${down + 1}`);
  box.append(bars, labels);
}
