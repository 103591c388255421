// digitnet page: draw a digit, send it to /api/predict, show what every layer does.
"use strict";

import { paintWeights, weightBars } from "./colours.js";
import { Diagram } from "./diagram.js";
import { Explorer } from "./explorer.js";
import { buildBars as makeBars, caveat, paintGrey, setBars as fillBars } from "./guess.js";
import { paintMini } from "./mini.js";
import { Learn } from "./learn.js";
import { greyPicture, listen, PENS, redraw as drawPad } from "./pad.js";
import { modelId, readAddress, shareable, writeAddress } from "./share.js";
import { setupSections } from "./sections.js";
import { showSteps } from "./steps.js";
import { squash, writeLede } from "./story.js";
import { Tour } from "./tour.js";
import { setupTeach } from "./teach.js";
import { setupTraining } from "./train.js";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const THROTTLE_MS = 120; // at most one prediction request this often while drawing
const TOUR_ASKED = new URLSearchParams(location.search).get("tour") === "1";

const state = {
  model: null,        // /api/model
  modelId: null,      // its FNV-1a, for links
  blank: null,        // /api/predict's answer for an all-black input
  strokes: [],        // [{width, points: [{x, y}, ...]}, ...] in pad pixels
  current: null,      // the stroke being drawn
  base: null,         // the picture under the strokes: {kind: "mnist"|"link", pixels, ...}
  result: null,       // the answer shown (null: the pad is blank)
  pinned: null,       // {layer, index} chosen by click, Enter or the link
  hover: null,        // previewed by the mouse
  focus: null,        // previewed by keyboard focus
  version: 0,         // bumped whenever the pad changes
  sent: 0,            // sequence number of the newest request sent
  applied: 0,         // sequence number of the newest answer shown
  inFlight: false,
  pending: null,      // {final} of a request waiting for the one in flight
  lastSent: 0,
  timer: null,
  linkModel: null,    // the model a link was made with, when it is not this one
  pageModel: null,    // the id (/api/models) of the model the page uses; null: the served one
};

// ---- drawing ------------------------------------------------------------------------

function pen() {
  const chosen = document.querySelector('input[name="pen"]:checked');
  return PENS[chosen ? chosen.value : "normal"];
}

function redraw() {
  drawPad(pad, state);
}

listen(pad, state, {   // strokes drawn on the pad go into state.strokes (pad.js)
  ready: () => Boolean(state.model),
  width: pen,
  begun() {
    state.version++;
    redraw();
    schedulePredict(false);
  },
  moved() {
    redraw();
    schedulePredict(false);
  },
  ended() {
    state.version++;
    schedulePredict(true);
  },
});

function changed() {
  // The pad changed: redraw it, and say what is on it now.
  state.version++;
  redraw();
  describePad();
}

$("clear").addEventListener("click", () => {
  state.strokes = [];
  state.base = null;
  changed();
  showBlank();
  announce("The pad is cleared.");
});

$("undo").addEventListener("click", () => {
  if (!state.strokes.length) return;
  state.strokes.pop();
  changed();
  if (state.strokes.length || state.base) {
    schedulePredict(true);
  } else {
    showBlank();
    announce("Last stroke undone; the pad is blank.");
  }
});

$("sample").addEventListener("click", async () => {
  const digit = $("sample-digit").value;
  try {
    const response = await fetch("/api/sample" + (digit === "" ? "" : `?digit=${digit}`));
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    state.base = { kind: "mnist", ...body };
    state.strokes = [];
    changed();
    schedulePredict(true);
  } catch (err) {
    setStatus(`Could not load a sample: ${err.message}`, true);
  }
});

// ---- talking to the network ------------------------------------------------------------

function schedulePredict(final) {
  // final: the pad is at rest (a stroke ended, Undo, a sample): announce the answer.
  clearTimeout(state.timer);
  const wait = final ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - state.lastSent));
  state.timer = setTimeout(() => sendPredict(final), wait);
}

async function sendPredict(final) {
  if (state.inFlight) {          // one request at a time; the newest drawing goes next
    state.pending = { final: final || Boolean(state.pending && state.pending.final) };
    return;
  }
  if (!state.strokes.length && !state.base) return;
  const seq = ++state.sent;
  const version = state.version;
  state.inFlight = true;
  state.lastSent = performance.now();
  try {
    const body = await predictBody();
    if (explorer.knockouts.size) body.knockout = explorer.knockoutList();
    const response = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (seq > state.applied && (state.strokes.length || state.base)) {
      state.applied = seq;
      if (response.ok) {
        show(answer);
        if (final && version === state.version && !state.current) settled(answer);
      } else {
        setStatus(answer.error || response.statusText, true);
      }
    }
  } catch (err) {
    setStatus(`The server did not answer: ${err.message}`, true);
  } finally {
    state.inFlight = false;
    if (state.pending) {
      const { final: next } = state.pending;
      state.pending = null;
      schedulePredict(next);
    }
  }
}

function drawing() {
  // What is on the pad, as /api/predict takes it (with the page's model), or null.
  if (!state.strokes.length && !state.base) return null;
  const body = state.strokes.length
    ? { image: pad.toDataURL("image/png") }
    : { pixels: state.base.pixels };
  return state.pageModel ? { ...body, model: state.pageModel } : body;
}

async function predictBody() {
  // drawing(), the pad as grey bytes where the browser can make them (pad.js greyPicture).
  const body = drawing();
  const grey = body && body.image ? await greyPicture(pad) : null;
  if (!grey) return body;
  const sent = { ...body, grey };
  delete sent.image;
  return sent;
}

function settled(answer) {
  // The answer for a pad at rest: announce it once and put it in the address.
  const p = answer.probabilities[answer.digit];
  const doubt = caveat(answer);
  const nudge = nudgeNote(answer);
  announce(`Guess ${answer.digit}, ${(100 * p).toFixed(1)}% sure${doubt ? `. ${doubt.short}` : ""}`
    + (nudge ? `. ${nudge}` : ""));
  updateAddress();
  describePad(nudge);
  training.drawingChanged();
  learn.drawingChanged(answer.input);
  teach.drawingChanged(state.strokes.length && !state.base ? answer.input : null);
}

function nudgeNote(answer) {
  // Whether strokes drawn on a nudged picture kept the network's answer, or "".
  if (!state.base || state.base.kind !== "nudge" || !state.strokes.length) return "";
  const { target } = state.base;
  const note = answer.digit === target
    ? `With your strokes it still says ${target}.`
    : `Your strokes undid the nudge: it now says ${answer.digit}, not ${target}.`;
  $("nudge-result").textContent = note;
  return note;
}

function describePad(note = "") {
  // The status line says what is on the pad, always (and then any note).
  const n = state.strokes.length;
  const yours = `${n} stroke${n === 1 ? "" : "s"} of yours`;
  const f = state.model ? squash(state.model.activation).symbol : "σ";
  let text;
  if (!state.base && !n) {
    text = "The pad is blank: draw a digit with your mouse, finger or pen. An empty picture "
      + `still gets an answer: each first-layer neuron shows ${f}(b), its bias alone.`;
  } else if (!state.base) {
    text = `Your drawing, ${n} stroke${n === 1 ? "" : "s"}. Keep drawing, undo the last stroke, or clear the pad.`;
  } else if (state.base.kind === "nudge") {
    const what = `Your picture, nudged until the network says ${state.base.target}`;
    text = n ? `${what}, with ${yours} on top.` : `${what}.`;
  } else if (state.base.kind === "mnist") {
    const what = `MNIST test image #${state.base.index}, labelled ${state.base.label}`;
    text = n ? `${what}, with ${yours} on top.` : `${what}.`;
  } else {
    const what = "The drawing from the link you opened";
    text = n ? `${what}, with ${yours} on top.` : `${what}.`;
    if (state.linkModel) {
      text += ` It was made with another network (model ${state.linkModel}, this one is ${state.modelId}), so its guess may have differed.`;
    }
  }
  setStatus(note ? `${text} ${note}` : text);
}

function setStatus(text, isError = false) {
  // The line under the pad; errors are also announced.
  const status = $("status");
  if (status.textContent !== text) status.textContent = text;
  status.classList.toggle("error", isError);
  if (isError) announce(text);
}

let announceTimer = null;
function announce(text) {
  // One message for screen readers, even when it repeats the last one.
  const region = $("announce");
  region.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { region.textContent = text; }, 60);
}

// ---- showing the answer ----------------------------------------------------------------

const buildBars = () => makeBars($("bars"));
const setBars = (probabilities, top) => fillBars($("bars"), probabilities, top);

function show(answer) {
  state.result = answer;
  const p = answer.probabilities[answer.digit];
  $("guess").textContent = answer.digit;
  $("confidence").textContent = `${(100 * p).toFixed(1)}% sure`;
  $("bars").classList.remove("blank");
  $("bars-caption").textContent = "The ten outputs, as probabilities:";
  setBars(answer.probabilities, answer.digit);
  const doubt = caveat(answer);
  $("caveat").hidden = !doubt;
  $("caveat").textContent = doubt ? doubt.text : "";
  $("not-digit").dataset.shown = String(Boolean(doubt));
  paintGrey($("seen"), answer.input);
  $("show-steps").disabled = false;
  refresh();
}

function showBlank() {
  // Nothing drawn: the guess is "?", and the outputs and the diagram show what the
  // network makes of an all-black input (784 zeros), as it really does.
  state.result = null;
  state.applied = state.sent;
  $("guess").textContent = "?";
  $("confidence").textContent = "nothing drawn";
  $("caveat").hidden = true;
  $("not-digit").dataset.shown = "false";
  $("bars").classList.add("blank");
  $("bars-caption").textContent = "What the network answers for an empty picture:";
  setBars(state.blank ? state.blank.probabilities : null, null);
  paintGrey($("seen"), new Array(784).fill(0));
  $("show-steps").disabled = true;
  updateAddress();
  refresh();
  training.drawingChanged();
  learn.drawingChanged(null);
  teach.drawingChanged(null);
}

// ---- the diagram and the chosen neuron ----------------------------------------------------

const diagram = new Diagram($("diagram"), {
  onPreview(neuron, source) {
    state[source] = neuron;
    refresh();
  },
  onPin: togglePin,
});

function togglePin(neuron) {
  const same = state.pinned && state.pinned.layer === neuron.layer && state.pinned.index === neuron.index;
  pin(same ? null : neuron);
}

// ---- the neuron explorer and the nudge (explorer.js) ---------------------------------------

const explorer = new Explorer({
  pin: togglePin,
  knockoutsChanged() {
    refresh();
    updateAddress();
    if (state.strokes.length || state.base) schedulePredict(true);
  },
  applyNudge(pixels, answer) {
    state.base = { kind: "nudge", pixels, target: answer.digit };
    state.strokes = [];
    changed();
    schedulePredict(true);
  },
  input: () => (state.result ? state.result.input : null),
});

// ---- how it learns (learn.js) ---------------------------------------------------------------

const learn = new Learn({
  input: () => (state.result ? state.result.input : null),
  announce,
  mark(links) {
    diagram.mark(links);
    $("marked-note").hidden = links.length === 0;
  },
  labelChanged: () => updateAddress(),
});

function pin(neuron) {
  state.pinned = neuron;
  refresh();
  updateAddress();
  announce(neuron ? `Pinned. ${neuronSummary(neuron)} What it does is in the Neurons section.`
    : "Neuron unpinned.");
}

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !state.pinned) return;
  if (event.target.closest && event.target.closest("dialog")) return;
  pin(null);
});

function activations() {
  return state.result ? state.result.activations : state.blank ? state.blank.activations : null;
}

function refresh() {
  // Redraw the diagram and the neuron panel from the state.
  diagram.render({
    acts: activations(),
    digit: state.result ? state.result.digit : null,
    pinned: state.pinned,
    knockouts: explorer.knockouts,
    preview: state.hover || state.focus,
    inputUrl: $("seen").toDataURL(),
  });
  showNeuron(state.hover || state.focus || state.pinned);
  explorer.update({ acts: activations(), pinned: state.pinned });
  const mini = $("mini");
  if (mini.offsetParent && state.model) {  // shown on a phone only
    paintMini(mini, state.model, activations(), state.result ? state.result.digit : null, $("seen"));
    mini.dataset.updates = Number(mini.dataset.updates) + 1;
  }
}

function neuronName({ layer, index }) {
  const last = state.model.sizes.length - 1;
  return layer === last ? `Output ${index}` : `Layer ${layer}, neuron ${index + 1}`;
}

function neuronSummary(neuron) {
  const { biases } = state.model;
  const acts = activations();
  const a = acts ? acts[neuron.layer][neuron.index] : null;
  return `${neuronName(neuron)}: bias ${biases[neuron.layer - 1][neuron.index].toFixed(3)}`
    + (a === null ? "" : `, activation ${a.toFixed(3)}`) + ". Its incoming weights are shown.";
}

function showNeuron(neuron) {
  const panel = $("neuron");
  const empty = !neuron || !state.model;
  panel.classList.toggle("empty", empty);
  $("neuron-help").hidden = !empty;
  $("neuron-facts").hidden = empty;
  if (empty) {
    $("neuron-title").textContent = "Pick a neuron";
    $("weights-bars").hidden = true;
    clearCanvas($("weights"));
    return;
  }
  const { layer, index } = neuron;
  const { weights, biases, sizes } = state.model;
  const W = weights[layer - 1][index];
  const canvas = $("weights");
  canvas.hidden = layer > 1;
  $("weights-bars").hidden = layer === 1;
  $("neuron").classList.toggle("bars", layer > 1);
  const side = Math.round(Math.sqrt(sizes[0]));
  if (layer === 1) paintWeights(canvas, W);
  else weightBars($("weights-bars"), W, `Incoming weights of ${neuronName(neuron)}`);
  const from = layer === 1 ? `the ${sizes[0]} input pixels, as a ${side}×${side} picture`
    : `layer ${layer - 1}'s ${W.length} neurons, one bar each`;
  const pinned = state.pinned && state.pinned.layer === layer && state.pinned.index === index;
  $("neuron-title").textContent = `${neuronName(neuron)} ${pinned ? "(pinned)" : "(preview)"}`;
  $("explore-this").hidden = !pinned;
  $("neuron-from").textContent = `Weights from ${from}.`;
  canvas.setAttribute("aria-label", `Incoming weights of ${neuronName(neuron)}`);
  $("neuron-bias").textContent = biases[layer - 1][index].toFixed(3);
  const acts = activations();
  const a = acts ? acts[layer][index] : null;
  $("neuron-activation").textContent = a === null ? "–" : a.toFixed(3) + (state.result ? "" : " (empty pad)");
}

function clearCanvas(canvas) {
  const g = canvas.getContext("2d");
  g.fillStyle = "#000";
  g.fillRect(0, 0, canvas.width, canvas.height);
}

// ---- the address, the link, the preprocessing steps ----------------------------------------

function updateAddress() {
  const query = writeAddress({
    input: state.result ? state.result.input : null,
    neuron: state.pinned,
    knockout: explorer.knockoutList(),
    label: learn.label,
    model: state.modelId,
  });
  history.replaceState(null, "", location.pathname + query);
}

$("copy-link").addEventListener("click", async () => {
  updateAddress();
  const url = shareable(location.href);
  try {
    await navigator.clipboard.writeText(url);
    describePad("The link is copied: it opens this drawing, its guess, the pinned neuron and any knock-outs.");
  } catch {
    const field = $("link-text");
    field.value = url;
    field.hidden = false;
    field.select();
    describePad("Copy the link from the box above (Ctrl+C or ⌘C).");
  }
});

$("show-steps").addEventListener("click", async () => {
  const dialog = $("steps");
  const body = $("steps-body");
  body.textContent = "Working…";
  dialog.showModal();
  try {
    await showSteps(body, {
      pad,
      strokes: state.strokes.length > 0,
      input: state.result ? state.result.input : new Array(784).fill(0),
    });
  } catch (err) {
    body.textContent = `Could not show the steps: ${err.message}`;
  }
});
$("steps-close").addEventListener("click", () => $("steps").close());

// ---- start -------------------------------------------------------------------------------

async function loadModel(id) {
  // The network the page uses: /api/model (id null: the served one), and its answer
  // for an empty picture.
  const response = await fetch("/api/model" + (id ? `?model=${encodeURIComponent(id)}` : ""));
  const text = await response.text();
  const model = JSON.parse(text);
  if (!response.ok) throw new Error(model.error || response.statusText);
  const blank = await fetch("/api/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ pixels: new Array(model.sizes[0]).fill(0), ...(id ? { model: id } : {}) }),
  });
  state.model = model;
  state.modelId = modelId(text);
  state.pageModel = id;
  state.blank = blank.ok ? await blank.json() : null;
  state.result = null;  // the old network's answer: the caller asks the new one
  const accuracy = model.test_accuracy == null ? "accuracy not recorded"
    : `${(100 * model.test_accuracy).toFixed(2)}% right on the 10,000 MNIST test images`;
  const name = id ? `Network ${id}: ` : "";
  $("model-info").textContent = `${name}${model.sizes.join("-")} network, ${model.activation} hidden layers, `
    + `${model.n_parameters.toLocaleString("en")} weights and biases; ${accuracy}.`;
  writeLede($("lede"), model);
  diagram.setModel(model);
  explorer.setModel(model, id);
  learn.setModel(model, id);
}

async function useModel(id) {
  // Switch the whole page (guess, diagram, neurons) to another network.
  await loadModel(id);
  const last = state.model.sizes.length - 1;
  if (state.pinned && (state.pinned.layer > last || state.pinned.index >= state.model.sizes[state.pinned.layer])) {
    state.pinned = null;
  }
  state.hover = state.focus = null;
  if (state.strokes.length || state.base) {
    await sendPredict(true);
  } else {
    showBlank();
  }
  announce(`The page now uses ${id ? `network ${id}` : "the served network"}.`);
}

const training = setupTraining({ drawing: predictBody, useModel });
const teach = setupTeach({ model: () => state.pageModel, training, announce });

const tour = new Tour({
  announce,
  model: () => state.model,
  guess: () => (state.result ? state.result.digit : null),
  pinned: () => state.pinned,
  pinSomething() {
    // the first-layer neuron that fires most for the input shown (the first if none)
    if (state.pinned) return;
    const first = activations() ? activations()[1] : [0];
    pin({ layer: 1, index: first.indexOf(Math.max(...first)) });
  },
});
setupSections(announce);

async function start() {
  buildBars();
  redraw();
  try {
    await loadModel(null);
  } catch (err) {
    $("model-info").textContent = `Could not load the network: ${err.message}`;
    return;
  }
  const m = state.model;
  new ResizeObserver(() => diagram.layout()).observe($("diagram"));

  const link = readAddress(location.search);
  if (link.neuron && link.neuron.layer >= 1 && link.neuron.layer < m.sizes.length
      && link.neuron.index >= 0 && link.neuron.index < m.sizes[link.neuron.layer]) {
    state.pinned = link.neuron;
  }
  if (link.model && link.model !== state.modelId) state.linkModel = link.model;
  explorer.setKnockouts(link.knockout);
  if (link.input && m.sizes[0] === 784) {
    state.base = { kind: "link", pixels: link.input };
    changed();
    await sendPredict(true);
  } else {
    changed();
    showBlank();
    if (link.badInput) setStatus("The link's drawing could not be read; the pad is blank.", true);
  }
  if (link.label !== null) await learn.choose(link.label);
  document.body.dataset.ready = "true";
  if (TOUR_ASKED) tour.open(0);
}

start();
