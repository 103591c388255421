// digitnet page: draw a digit, send it to /api/predict, show what every layer does.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const SVG = "http://www.w3.org/2000/svg";
const STROKE_WIDTH = 20;   // in the 280 px pad: about MNIST's stroke once shrunk to 20 px
const THROTTLE_MS = 120;   // at most one prediction request this often while drawing

const state = {
  model: null,      // /api/model
  strokes: [],      // [[{x, y}, ...], ...] in pad pixels
  current: null,    // the stroke being drawn
  sample: null,     // {label, index, pixels} when an MNIST digit is shown
  result: null,     // the last /api/predict answer applied
  selected: null,   // {layer, index} of the neuron whose weights are shown
  sent: 0,          // sequence number of the newest request sent
  applied: 0,       // sequence number of the newest answer shown
  inFlight: false,
  pending: false,
  lastSent: 0,
  timer: null,
};

// ---- drawing ------------------------------------------------------------------------

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (state.sample) drawSample(state.sample.pixels);
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = STROKE_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const stroke of state.strokes) drawStroke(stroke);
}

function drawStroke(stroke) {
  if (stroke.length === 1) {
    ctx.beginPath();
    ctx.arc(stroke[0].x, stroke[0].y, STROKE_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(stroke[0].x, stroke[0].y);
  for (const p of stroke.slice(1)) ctx.lineTo(p.x, p.y);
  ctx.stroke();
}

function drawSample(pixels) {
  // An MNIST digit (white on black) shown as dark ink on the white pad.
  const cell = pad.width / 28;
  for (let i = 0; i < 784; i++) {
    if (pixels[i] <= 0) continue;
    const v = Math.round(255 * (1 - pixels[i]));
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % 28) * cell, Math.floor(i / 28) * cell, cell + 0.5, cell + 0.5);
  }
}

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left) * (pad.width / rect.width),
    y: (event.clientY - rect.top) * (pad.height / rect.height),
  };
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.current = [padPoint(event)];
  state.strokes.push(state.current);
  redraw();
  schedulePredict();
});

pad.addEventListener("pointermove", (event) => {
  if (!state.current) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) state.current.push(padPoint(e));
  redraw();
  schedulePredict();
});

function endStroke(event) {
  if (!state.current) return;
  event.preventDefault();
  state.current = null;
  schedulePredict(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("touchstart", (e) => e.preventDefault(), { passive: false });
pad.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });

$("clear").addEventListener("click", () => {
  state.strokes = [];
  state.sample = null;
  redraw();
  showNothing();
  setStatus("Draw a digit with your mouse, finger or pen.");
});

$("undo").addEventListener("click", () => {
  state.strokes.pop();
  redraw();
  if (state.strokes.length || state.sample) schedulePredict(true);
  else showNothing();
});

$("sample").addEventListener("click", async () => {
  const digit = $("sample-digit").value;
  try {
    const response = await fetch("/api/sample" + (digit === "" ? "" : `?digit=${digit}`));
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    state.sample = body;
    state.strokes = [];
    redraw();
    setStatus(`MNIST test image #${body.index}, labelled ${body.label}.`);
    schedulePredict(true);
  } catch (err) {
    setStatus(`Could not load a sample: ${err.message}`, true);
  }
});

// ---- talking to the network ------------------------------------------------------------

function schedulePredict(now = false) {
  clearTimeout(state.timer);
  const wait = now ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - state.lastSent));
  state.timer = setTimeout(sendPredict, wait);
}

async function sendPredict() {
  if (state.inFlight) {          // one request at a time; the newest drawing goes next
    state.pending = true;
    return;
  }
  if (!state.strokes.length && !state.sample) return;
  const seq = ++state.sent;
  const body = state.strokes.length
    ? { image: pad.toDataURL("image/png") }
    : { pixels: state.sample.pixels };
  state.inFlight = true;
  state.lastSent = performance.now();
  try {
    const response = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (seq > state.applied && (state.strokes.length || state.sample)) {
      state.applied = seq;
      if (response.ok) {
        show(answer);
        if (!state.sample) setStatus("Keep drawing, or press Clear to start again.");
      } else {
        setStatus(answer.error || response.statusText, true);
      }
    }
  } catch (err) {
    setStatus(`The server did not answer: ${err.message}`, true);
  } finally {
    state.inFlight = false;
    if (state.pending) {
      state.pending = false;
      schedulePredict(true);
    }
  }
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// ---- showing the answer ----------------------------------------------------------------

function buildBars() {
  const bars = $("bars");
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${d}</span><span class="bar"><span></span></span><span class="value">–</span>`;
    li.dataset.digit = d;
    bars.appendChild(li);
  }
}

function show(answer) {
  state.result = answer;
  $("guess").textContent = answer.digit;
  const top = answer.digit;
  [...$("bars").children].forEach((li, d) => {
    const p = answer.probabilities[d];
    li.querySelector(".bar > span").style.width = `${(100 * p).toFixed(1)}%`;
    li.querySelector(".value").textContent = `${(100 * p).toFixed(1)}%`;
    li.classList.toggle("top", d === top);
  });
  paintGrey($("seen"), answer.input);
  updateDiagram();
  if (state.selected) showNeuron(state.selected.layer, state.selected.index);
}

function showNothing() {
  state.result = null;
  state.applied = state.sent;
  $("guess").textContent = "?";
  for (const li of $("bars").children) {
    li.querySelector(".bar > span").style.width = "0";
    li.querySelector(".value").textContent = "–";
    li.classList.remove("top");
  }
  paintGrey($("seen"), new Array(784).fill(0));
  updateDiagram();
  if (state.selected) showNeuron(state.selected.layer, state.selected.index);
}

function paintGrey(canvas, values) {
  const g = canvas.getContext("2d");
  const image = g.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, values[i])));
    image.data.set([v, v, v, 255], 4 * i);
  }
  g.putImageData(image, 0, 0);
}

function diverging(value, scale) {
  // blue for negative, white at zero, red for positive (as in the video)
  const t = Math.max(-1, Math.min(1, value / (scale || 1)));
  const [r, g, b] = t < 0 ? [58, 134, 255] : [228, 87, 46];
  const k = Math.abs(t);
  return [255 + (r - 255) * k, 255 + (g - 255) * k, 255 + (b - 255) * k].map(Math.round);
}

// ---- the network diagram ---------------------------------------------------------------

const layout = { inputX: 20, inputY: 70, cell: 10, columns: [430, 570, 690] };

function neuronY(count, index) {
  const top = 20, height = 400;
  const step = height / count;
  return top + step * (index + 0.5);
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function buildDiagram() {
  const svg = $("diagram");
  svg.innerHTML = "";
  const sizes = state.model.sizes;
  const side = Math.round(Math.sqrt(sizes[0]));
  el("rect", { x: layout.inputX - 1, y: layout.inputY - 1, width: side * layout.cell + 2,
    height: side * layout.cell + 2, fill: "none", stroke: "#5b6473" }, svg);
  el("image", { id: "input-image", x: layout.inputX, y: layout.inputY,
    width: side * layout.cell, height: side * layout.cell, preserveAspectRatio: "none",
    style: "image-rendering: pixelated" }, svg);
  const labels = [`input: ${sizes[0]} pixels`, ...sizes.slice(1, -1).map((n, i) => `layer ${i + 1}: ${n}`), "output"];
  el("text", { x: layout.inputX + side * layout.cell / 2, y: layout.inputY + side * layout.cell + 22, class: "label" }, svg)
    .textContent = labels[0];
  el("g", { id: "links" }, svg);
  const hidden = sizes.length - 2;
  sizes.slice(1).forEach((count, l) => {
    const x = layout.columns[Math.min(l, layout.columns.length - 1)];
    const group = el("g", { id: `layer-${l + 1}` }, svg);
    for (let j = 0; j < count; j++) {
      const isHidden = l < hidden;
      const circle = el("circle", { cx: x, cy: neuronY(count, j), r: count > 12 ? 10 : 13,
        fill: "#000", "data-layer": l + 1, "data-index": j }, group);
      if (isHidden) {
        circle.classList.add("hidden-neuron");
        circle.setAttribute("tabindex", "0");
        circle.setAttribute("role", "button");
        circle.setAttribute("aria-label", `layer ${l + 1}, neuron ${j + 1}: show its incoming weights`);
        circle.addEventListener("click", () => showNeuron(l + 1, j));
        circle.addEventListener("mouseenter", () => showNeuron(l + 1, j));
        circle.addEventListener("focus", () => showNeuron(l + 1, j));
        circle.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); showNeuron(l + 1, j); }
        });
      } else {
        el("text", { x: x + 22, y: neuronY(count, j), class: "out-label", id: `out-label-${j}` }, svg)
          .textContent = `${j}`;
      }
    }
    el("text", { x, y: 14, class: "label" }, svg).textContent = labels[l + 1];
  });
}

function activationShade(values, activation) {
  // map a layer's activations to [0, 1] for shading
  if (activation === "sigmoid") return values.map((v) => Math.max(0, Math.min(1, v)));
  if (activation === "tanh") return values.map((v) => (v + 1) / 2);
  const top = Math.max(1e-9, ...values);
  return values.map((v) => Math.max(0, v) / top);
}

function strongest(links, k) {
  return links.sort((a, b) => Math.abs(b.c) - Math.abs(a.c)).slice(0, k);
}

function updateDiagram() {
  if (!state.model) return;
  const { sizes, weights, activation } = state.model;
  const acts = state.result ? state.result.activations : null;
  const side = Math.round(Math.sqrt(sizes[0]));
  const image = $("input-image");
  if (image) image.setAttribute("href", $("seen").toDataURL());

  // neurons shaded by activation
  for (let l = 1; l < sizes.length; l++) {
    const values = acts ? acts[l] : new Array(sizes[l]).fill(0);
    const shades = l === sizes.length - 1 ? values.map((v) => Math.max(0, Math.min(1, v)))
      : activationShade(values, activation);
    [...$(`layer-${l}`).children].forEach((circle, j) => {
      const v = Math.round(255 * shades[j]);
      circle.setAttribute("fill", `rgb(${v},${v},${v})`);
      circle.classList.toggle("guess-neuron", l === sizes.length - 1 && acts && j === state.result.digit);
      const title = circle.querySelector("title") || el("title", {}, circle);
      title.textContent = `layer ${l}, neuron ${j + 1}: activation ${values[j].toFixed(3)}`;
    });
  }
  for (let j = 0; j < sizes[sizes.length - 1]; j++) {
    const label = $(`out-label-${j}`);
    if (!label) continue;
    const v = acts ? acts[sizes.length - 1][j] : null;
    label.textContent = v === null ? `${j}` : `${j}  ${v.toFixed(2)}`;
    label.classList.toggle("top", Boolean(acts) && j === state.result.digit);
  }

  // the strongest connections: contribution w·a for this input (|w| with no input)
  const links = $("links");
  links.innerHTML = "";
  const drawn = [];
  for (let l = 0; l < weights.length; l++) {
    const W = weights[l];
    const from = acts ? acts[l] : null;
    const candidates = [];
    for (let j = 0; j < W.length; j++) {
      const row = W[j];
      for (let k = 0; k < row.length; k++) {
        const c = from ? row[k] * from[k] : row[k] * 0.05;
        if (c !== 0) candidates.push({ l, j, k, w: row[k], c });
      }
    }
    drawn.push(...strongest(candidates, l === 0 ? 48 : 40));
  }
  const max = Math.max(1e-9, ...drawn.map((d) => Math.abs(d.c)));
  for (const d of drawn) {
    let x1, y1;
    if (d.l === 0) {
      x1 = layout.inputX + ((d.k % side) + 0.5) * layout.cell;
      y1 = layout.inputY + (Math.floor(d.k / side) + 0.5) * layout.cell;
    } else {
      x1 = layout.columns[d.l - 1];
      y1 = neuronY(sizes[d.l], d.k);
    }
    const x2 = layout.columns[Math.min(d.l, layout.columns.length - 1)];
    const y2 = neuronY(sizes[d.l + 1], d.j);
    const strength = Math.abs(d.c) / max;
    el("line", { x1, y1, x2, y2, stroke: d.w > 0 ? "#e4572e" : "#3a86ff",
      "stroke-width": (0.4 + 3.2 * strength).toFixed(2),
      "stroke-opacity": (0.25 + 0.7 * strength).toFixed(2) }, links);
  }
}

function showNeuron(layer, index) {
  state.selected = { layer, index };
  const { weights, biases, sizes } = state.model;
  const W = weights[layer - 1][index];
  const canvas = $("weights");
  const side = Math.round(Math.sqrt(W.length));
  const square = side * side === W.length;
  canvas.width = square ? side : W.length;
  canvas.height = square ? side : 1;
  const g = canvas.getContext("2d");
  const image = g.createImageData(canvas.width, canvas.height);
  const scale = Math.max(1e-9, ...W.map(Math.abs));
  W.forEach((w, i) => image.data.set([...diverging(w, scale), 255], 4 * i));
  g.putImageData(image, 0, 0);
  const from = layer === 1 ? `the ${sizes[0]} input pixels, as a ${side}×${side} picture`
    : `the ${W.length} neurons of layer ${layer - 1}${square ? `, as a ${side}×${side} grid` : ""}`;
  $("neuron-title").textContent = `Layer ${layer}, neuron ${index + 1}: weights from ${from}`;
  $("neuron-bias").textContent = biases[layer - 1][index].toFixed(3);
  const acts = state.result ? state.result.activations[layer][index] : null;
  $("neuron-activation").textContent = acts === null ? "– (draw a digit)" : acts.toFixed(3);
  $("neuron").hidden = false;
  for (const c of document.querySelectorAll("#diagram circle.hidden-neuron")) {
    c.classList.toggle("selected", Number(c.dataset.layer) === layer && Number(c.dataset.index) === index);
  }
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  buildBars();
  redraw();
  try {
    const response = await fetch("/api/model");
    state.model = await response.json();
    if (!response.ok) throw new Error(state.model.error || response.statusText);
  } catch (err) {
    $("model-info").textContent = `Could not load the network: ${err.message}`;
    return;
  }
  const m = state.model;
  const accuracy = m.test_accuracy == null ? "accuracy not recorded"
    : `${(100 * m.test_accuracy).toFixed(2)}% right on the 10,000 MNIST test images`;
  $("model-info").textContent = `${m.sizes.join("-")} network, ${m.activation} hidden layers, `
    + `${m.n_parameters.toLocaleString("en")} weights and biases; ${accuracy}.`;
  buildDiagram();
  showNothing();
  document.body.dataset.ready = "true";
}

start();
