// The "train your own" panel: start a run (POST /api/train), wait for its turn in the
// queue, watch it epoch by epoch (GET /api/train/{id}/events), stop it (DELETE: only
// this browser's own run), then use, compare and download the networks the server
// holds (GET /api/models: this browser's own first).
"use strict";

import { paintWeights } from "./colours.js";

const $ = (id) => document.getElementById(id);
const COST = "#ff7a5c";       // the cost curve (as --pos)
const ACCURACY = "#5ee6ff";   // validation accuracy (as --pin)
const TRAINING = "#a3acbb";   // training accuracy (as --dim)
// The page's pace: a second at least from one epoch to the next, so each can be seen
// (the API's default, for scripts, is no wait).
const PAGE_PACE = 1;
// "As in the video": the video's network trained by Michael Nielsen's network.py recipe
// (sigmoid outputs, quadratic cost, plain SGD at η = 3, batches of 10, no shifts), with
// our cosine schedule and weight decay: a 3-epoch run (seed 0) had 90.8% of the held-out
// digits right after one epoch and 93.8% after three.
const VIDEO = {
  sizes: [784, 16, 16, 10], activation: "sigmoid", output: "sigmoid", loss: "quadratic",
  optimizer: "sgd", lr: 3, epochs: 10, batch_size: 10, augment: 0,
};
// The form's fields, in order: [setting, the label's words] (the help comes from the server).
const FIELDS = [
  ["activation", "Activation"], ["output", "Output"], ["loss", "Cost"], ["optimizer", "Optimiser"],
  ["lr", "Learning rate"], ["epochs", "Epochs"], ["batch_size", "Batch size"],
  ["augment", "Shifts (px)"], ["pace", "Pace"],
];

async function call(url, options = {}) {
  // fetch, with the server's {"error": ...} as the thrown message.
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { field: body.field });
  return body;
}

function post(url, body) {
  return call(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// ---- the form ---------------------------------------------------------------------------

function fillSelect(select, names, chosen) {
  select.innerHTML = "";
  for (const name of names) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    option.selected = name === chosen;
    select.appendChild(option);
  }
}

function hiddenText(sizes) {
  const hidden = sizes.slice(1, -1);
  return hidden.length ? hidden.join(",") : "none";
}

function readForm() {
  // The request: every field as the form holds it; the server says what is wrong.
  const text = $("train-hidden").value.trim().toLowerCase();
  const hidden = text === "" || text === "none" ? []
    : text.split(/[\s,]+/).filter(Boolean).map(Number);
  const whole = (id) => Number($(id).value);
  return {
    sizes: [784, ...hidden, 10],
    activation: $("train-activation").value,
    output: $("train-output").value,
    loss: $("train-loss").value,
    optimizer: $("train-optimizer").value,
    lr: Number($("train-lr").value),
    epochs: whole("train-epochs"),
    batch_size: whole("train-batch"),
    augment: whole("train-augment"),
    ...runName(),
    pace: Number($("train-pace").value),
  };
}

function runName() {
  // {name} when the learner gave their run one; the server makes one up otherwise.
  const name = $("train-name").value.trim();
  return name ? { name } : {};
}

function waitingText(position, name) {
  return position === 1 ? `Your run ${name} is next: one run trains before it…`
    : `Your run ${name} is waiting: ${position} runs train before it…`;
}

function setForm(defaults) {
  $("train-hidden").value = hiddenText(defaults.sizes);
  $("train-activation").value = defaults.activation;
  $("train-output").value = defaults.output;
  $("train-loss").value = defaults.loss;
  $("train-optimizer").value = defaults.optimizer;
  $("train-lr").value = defaults.lr;
  $("train-epochs").value = defaults.epochs;
  $("train-batch").value = defaults.batch_size;
  $("train-augment").value = defaults.augment;
  $("train-pace").value = PAGE_PACE;
}

function fillHelp(list, help) {
  // Each field's help, as the server has it (the settings' own, as `digitnet train
  // --help` says it), beside the form, and tied to its control for screen readers.
  list.textContent = "";
  for (const [name, words] of FIELDS) {
    if (!help[name]) continue;
    const dt = document.createElement("dt");
    dt.textContent = words;
    const dd = document.createElement("dd");
    dd.id = `train-help-${name}`;
    dd.textContent = help[name];
    list.append(dt, dd);
    const control = document.querySelector(`#train-form [data-setting="${name}"]`);
    if (control) control.setAttribute("aria-describedby", dd.id);
  }
}

function markField(field) {
  // The control a refusal names gets aria-invalid (and the focus); the others lose it.
  let named = null;
  for (const control of document.querySelectorAll("#train-form input, #train-form select")) {
    const setting = control.id === "train-hidden" ? "sizes" : control.dataset.setting;
    const bad = setting === field;
    control.toggleAttribute("aria-invalid", bad);
    if (bad) named = control;
  }
  if (named) named.focus();
}

// ---- the curves -------------------------------------------------------------------------

function accuracyAxis(epochs) {
  // The accuracy scale [low, high], fitted to the accuracies so far in steps of 5%, at
  // least 10% tall: 90-97% no longer squashed against the top of a 0-100% scale.
  const values = epochs.flatMap((e) => [e.accuracy, e.val_accuracy]).filter(Number.isFinite);
  if (!values.length) return [0, 1];
  const high = Math.min(1, Math.ceil((Math.max(...values) + 0.01) * 20) / 20);
  const low = Math.max(0, Math.min(high - 0.1, Math.floor((Math.min(...values) - 0.02) * 20) / 20));
  return [low, high];
}

function drawChance(g, canvas, box, yAcc, low) {
  // Chance, one digit in ten (where an untrained network starts): a dashed line, or a
  // note at the foot of the scale when the scale starts above it.
  const { left, top, pw, ph } = box;
  g.fillStyle = g.strokeStyle = "#a3acbb";
  g.textAlign = "left";
  canvas.dataset.chance = low <= 0.1 ? "line" : "below";
  if (low > 0.1) {
    g.fillText(`↓ chance, 10%, is below this scale`, left + 4, top + ph - 4);
    return;
  }
  g.setLineDash([2, 4]);
  g.beginPath();
  g.moveTo(left, yAcc(0.1));
  g.lineTo(left + pw, yAcc(0.1));
  g.stroke();
  g.setLineDash([]);
  g.fillText("chance, 10%", left + 4, yAcc(0.1) - 4);
}

function drawCurves(canvas, epochs, planned) {
  // Cost (left scale, from 0) and accuracy (right scale, fitted) against the epoch.
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const left = 44, right = 44, top = 12, bottom = 28;
  const pw = w - left - right, ph = h - top - bottom;
  g.clearRect(0, 0, w, h);
  g.font = "12px system-ui, sans-serif";
  g.strokeStyle = "#8b95a7";
  g.lineWidth = 1;
  g.strokeRect(left, top, pw, ph);
  const last = Math.max(planned, 1);
  const x = (epoch) => left + (pw * epoch) / last;
  const maxCost = Math.max(1e-9, ...epochs.map((e) => e.cost));
  const [low, high] = accuracyAxis(epochs);
  const yCost = (c) => top + ph * (1 - c / maxCost);
  const yAcc = (a) => top + ph * (1 - (a - low) / (high - low));
  canvas.dataset.accuracyScale = `${Math.round(100 * low)}-${Math.round(100 * high)}`;
  g.fillStyle = "#a3acbb";
  g.textAlign = "center";
  for (const epoch of [0, last]) g.fillText(String(epoch), x(epoch), top + ph + 14);
  g.fillText("epoch", left + pw / 2, top + ph + 14);
  drawChance(g, canvas, { left, top, pw, ph }, yAcc, low);
  g.textAlign = "right";
  g.fillStyle = COST;
  g.fillText(maxCost.toFixed(2), left - 4, top + 10);
  g.fillText("0", left - 4, top + ph);
  g.textAlign = "left";
  g.fillStyle = ACCURACY;
  for (const a of [low, (low + high) / 2, high]) {
    g.fillText(`${Math.round(100 * a)}%`, left + pw + 4, Math.min(top + ph, Math.max(top + 10, yAcc(a) + 4)));
  }
  const line = (values, y, colour, dash = []) => {
    const points = epochs.map((e) => [x(e.epoch), y(values(e))]).filter(([, v]) => Number.isFinite(v));
    if (!points.length) return;
    g.strokeStyle = g.fillStyle = colour;
    g.setLineDash(dash);
    g.lineWidth = 2;
    g.beginPath();
    points.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
    g.stroke();
    g.setLineDash([]);
    for (const [px, py] of points) g.fillRect(px - 2, py - 2, 4, 4);
  };
  line((e) => e.accuracy, yAcc, TRAINING, [4, 3]);
  line((e) => e.cost, yCost, COST);
  line((e) => (e.val_accuracy == null ? NaN : e.val_accuracy), yAcc, ACCURACY);
  canvas.dataset.points = String(epochs.length);
  const newest = epochs[epochs.length - 1];
  if (newest && newest.val_accuracy != null) {
    g.fillStyle = ACCURACY;
    g.textAlign = "right";
    g.fillText(percent(newest.val_accuracy), x(newest.epoch) - 4, Math.min(top + ph - 4, yAcc(newest.val_accuracy) + 16));
  }
  canvas.setAttribute("aria-label", newest
    ? `Learning curves after epoch ${newest.epoch} of ${planned}: cost ${newest.cost.toFixed(3)}, `
      + `validation accuracy ${percent(newest.val_accuracy)}; the accuracy scale runs from `
      + `${Math.round(100 * low)}% to ${Math.round(100 * high)}%`
    : "Learning curves: no epoch yet");
}

function drawWeights(container, rows) {
  // The first layer's incoming weights, one 28x28 picture per neuron.
  while (container.children.length > rows.length) container.lastChild.remove();
  while (container.children.length < rows.length) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    canvas.setAttribute("role", "img");
    container.appendChild(canvas);
  }
  rows.forEach((row, j) => {
    const canvas = container.children[j];
    // Full colour at the 98th percentile of |w|: Adam gives the few pixels that are
    // almost never inked large weights, which would wash the strokes out.
    const sorted = row.map(Math.abs).sort((a, b) => a - b);
    paintWeights(canvas, row, Math.max(1e-9, sorted[Math.floor(0.98 * (sorted.length - 1))]));
    canvas.setAttribute("aria-label", `Incoming weights of layer 1, neuron ${j + 1}`);
  });
}

// ---- the panel --------------------------------------------------------------------------

export function setupTraining({ drawing, useModel }) {
  // drawing(): a promise of the pad as /api/predict takes it, or of null;
  // useModel(id): switch the page.
  const panel = {
    job: null,          // the run followed: {id, planned, epochs: [...]}
    source: null,       // its EventSource
    models: [],         // /api/models
    ready: false,
    guessSeq: 0,
    waiter: null,       // {resolve, reject} of launch(), for the run it started
  };

  function status(text, isError = false) {
    const line = $("train-status");
    line.textContent = text;
    line.classList.toggle("error", isError);
  }

  function running(yes) {
    $("train-start").disabled = yes;
    $("train-stop").disabled = !yes;
    $("train-form").setAttribute("aria-busy", yes ? "true" : "false");
  }

  async function guessWith(model, body) {
    return post("/api/predict", { ...body, model });
  }

  async function showNewestGuess() {
    // The current drawing read by the run's newest weights.
    const body = await drawing();
    const out = $("train-guess");
    if (!panel.job || !panel.job.epochs.length) return;
    if (!body) {
      out.textContent = "?";
      $("train-guess-p").textContent = "draw a digit to see it read";
      return;
    }
    const seq = ++panel.guessSeq;
    const { model, ...pixels } = body;
    try {
      const answer = await guessWith(panel.job.id, pixels);
      if (seq !== panel.guessSeq) return;
      out.textContent = answer.digit;
      out.dataset.updates = String(Number(out.dataset.updates || 0) + 1);
      const epoch = panel.job.epochs[panel.job.epochs.length - 1].epoch;
      $("train-guess-p").textContent = `${percent(answer.probabilities[answer.digit])} sure, `
        + `with the weights of epoch ${epoch}`;
    } catch (err) {
      $("train-guess-p").textContent = `could not read it: ${err.message}`;
    }
  }

  async function refreshModels(chosen) {
    panel.models = await call("/api/models");
    const label = (m) => `${m.name && m.name !== m.id ? `${m.name} (${m.id})` : m.id}`
      + `${m.mine ? ", yours" : ""}: ${m.sizes.join("-")} ${m.activation}`
      + (m.test_accuracy == null ? "" : `, ${percent(m.test_accuracy)}`);
    for (const [id, pick] of [["compare-a", null], ["compare-b", chosen], ["page-model", null]]) {
      const select = $(id);
      const keep = pick || select.value || (id === "compare-b" && panel.models.length > 1
        ? panel.models[panel.models.length - 1].id : panel.models[0].id);
      select.innerHTML = "";
      for (const m of panel.models) {
        const option = document.createElement("option");
        option.value = m.id;
        option.textContent = label(m);
        select.appendChild(option);
      }
      select.value = panel.models.some((m) => m.id === keep) ? keep : panel.models[0].id;
    }
    $("download").disabled = false;
    compare();
  }

  async function compare() {
    // Both chosen networks on the current drawing, side by side.
    const body = await drawing();
    for (const side of ["a", "b"]) {
      const id = $(`compare-${side}`).value;
      const guess = $(`compare-${side}-guess`);
      const detail = $(`compare-${side}-detail`);
      if (!body || !id) {
        guess.textContent = "?";
        detail.textContent = "draw a digit to compare";
        continue;
      }
      const { model, ...pixels } = body;
      try {
        const answer = await guessWith(id, pixels);
        guess.textContent = answer.digit;
        const top = answer.probabilities.map((p, d) => [p, d]).sort((a, b) => b[0] - a[0]).slice(0, 3);
        detail.textContent = top.map(([p, d]) => `${d}: ${percent(p)}`).join(", ");
      } catch (err) {
        guess.textContent = "?";
        detail.textContent = err.message;
      }
    }
  }

  function follow(id, planned, name = id) {
    panel.job = { id, planned, name, epochs: [] };
    $("train-guess").dataset.updates = "0";
    const source = panel.source = new EventSource(`/api/train/${encodeURIComponent(id)}/events`);
    source.addEventListener("queued", (event) => {
      const { position } = JSON.parse(event.data);
      $("train-status").dataset.position = String(position);
      status(waitingText(position, name));
    });
    source.addEventListener("started", () => {
      $("train-status").dataset.position = "0";
      status(`${name}: its turn, loading the digits…`);
    });
    source.addEventListener("epoch", (event) => {
      const data = JSON.parse(event.data);
      panel.job.epochs.push(data);
      drawCurves($("train-curves"), panel.job.epochs, planned);
      drawWeights($("train-weights"), data.weights);
      const val = data.val_accuracy == null ? "" : `, ${percent(data.val_accuracy)} of the 5,000 held-out digits right`;
      status(`Epoch ${data.epoch} of ${planned}: cost ${data.cost.toFixed(3)}${val} (trained in ${data.seconds.toFixed(1)} s).`);
      showNewestGuess();
    });
    source.addEventListener("done", async (event) => {
      source.close();
      const data = JSON.parse(event.data);
      running(false);
      const why = data.stopped_by === "budget"
        ? `Stopped at the work budget after ${data.epochs} epochs`
        : data.stopped === "interrupted" ? `Stopped after ${data.epochs} epochs`
          : `Done: ${data.epochs} epochs`;
      status(`${why}. Network ${data.model} keeps the weights of epoch ${data.best_epoch}: `
        + `${percent(data.test_accuracy)} of the 10,000 test digits right.`);
      $("train-status").dataset.state = "done";
      await refreshModels(data.model);
      settle("resolve", data);
    });
    source.addEventListener("error", (event) => {
      if (event.data === undefined) {
        // The connection broke: EventSource reconnects and gets every event again.
        if (source.readyState === EventSource.CLOSED) { running(false); status("Lost the connection to the server.", true); }
        panel.job.epochs = [];
        return;
      }
      source.close();
      running(false);
      status(`Training failed: ${JSON.parse(event.data).message}`, true);
      $("train-status").dataset.state = "error";
      settle("reject", new Error(JSON.parse(event.data).message));
    });
  }

  function settle(how, value) {
    const waiter = panel.waiter;
    panel.waiter = null;
    if (waiter) waiter[how](value);
  }

  async function run(request) {
    // Start a run of request (a POST /api/train body) and follow it here; false if it
    // could not start.
    if (panel.source) panel.source.close();
    markField(null);
    running(true);
    $("train-status").dataset.state = "running";
    try {
      const { id, name, position } = await post("/api/train", request);
      $("train-status").dataset.position = String(position);
      const pace = request.pace > 0 ? `, an epoch every ${request.pace} s at least` : "";
      status(position ? waitingText(position, name)
        : `Training ${name} (${id}${pace}): loading the digits…`);
      follow(id, request.epochs || panel.defaults.epochs, name);
      return true;
    } catch (err) {
      running(false);
      $("train-status").dataset.state = "error";
      status(`Cannot train: ${err.message}`, true);
      markField(err.field);
      settle("reject", err);
      return false;
    }
  }

  $("train-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(readForm());
  });

  $("train-stop").addEventListener("click", async () => {
    if (!panel.job) return;
    $("train-stop").disabled = true;
    // The run may end (its last event read) before the answer to the stop arrives: then
    // the end's words stay, not "Stopping…" under a finished run.
    const stillRunning = () => $("train-status").dataset.state === "running";
    try {
      await call(`/api/train/${encodeURIComponent(panel.job.id)}`, { method: "DELETE" });
      if (stillRunning()) status("Stopping after the current batch…");
    } catch (err) {
      if (stillRunning()) status(`Cannot stop: ${err.message}`, true);
    }
  });

  $("train-reset").addEventListener("click", () => panel.defaults && setForm(panel.defaults));
  $("train-preset").addEventListener("click", () => {
    setForm(VIDEO);
    status("The video's setup is in the form: press Train to watch it learn.");
  });
  $("compare-a").addEventListener("change", compare);
  $("compare-b").addEventListener("change", compare);
  $("use-model").addEventListener("click", async () => {
    const id = $("page-model").value;
    try {
      await useModel(id === "served" ? null : id);
    } catch (err) {
      status(`Cannot use ${id}: ${err.message}`, true);
    }
  });
  $("download").addEventListener("click", () => {
    const id = $("page-model").value;
    const link = document.createElement("a");
    link.href = `/api/models/${encodeURIComponent(id)}/file`;
    link.download = `${id}.safetensors`;
    link.click();
  });

  async function start() {
    try {
      const options = await call("/api/train");
      panel.defaults = options.defaults;
      fillSelect($("train-activation"), options.choices.activation, options.defaults.activation);
      fillSelect($("train-output"), options.choices.output, options.defaults.output);
      fillSelect($("train-loss"), options.choices.loss, options.defaults.loss);
      fillSelect($("train-optimizer"), options.choices.optimizer, options.defaults.optimizer);
      setForm(options.defaults);
      fillHelp($("train-help"), options.help);
      const l = options.limits;
      $("train-pace").max = l.pace;
      $("train-epochs").max = l.epochs;
      $("train-batch").max = l.batch_size;
      $("train-augment").max = l.augment;
      $("train-limits").textContent = `At most ${l.hidden_layers} hidden layers of at most `
        + `${l.hidden_width} neurons, ${l.epochs} epochs, batches of ${l.batch_size}, `
        + `shifts of ${l.augment} pixels, a pace of ${l.pace} s, about ${l.work_seconds} s of `
        + "work; one training at a time, the others wait their turn.";
      $("train-start").disabled = false;
      await refreshModels(null);
      const mine = options.queue.find((run) => run.mine);
      if (mine) {
        // this browser's own run, training or waiting: follow it (and it may stop it)
        running(true);
        follow(mine.id, mine.epochs, mine.name);
        status(mine.position ? waitingText(mine.position, mine.name)
          : `Your training ${mine.name} (${mine.id}) is running; following it.`);
      } else if (options.running) {
        // another browser's run: shown, never stoppable from here
        status(`${options.running.name} is training for another browser; yours would `
          + `wait behind ${options.queue.length} run${options.queue.length === 1 ? "" : "s"}.`);
      }
      if (!options.enabled) status("Training is switched off for now by the teacher.", true);
      panel.ready = true;
    } catch (err) {
      status(`Training is not available: ${err.message}`, true);
    }
  }
  start();

  return {
    launch(request) {
      // A run of request through this panel (its events and curves): a promise of its
      // "done" event's data, rejected if it cannot start or fails.
      return new Promise((resolve, reject) => {
        settle("reject", new Error("another run was started"));
        panel.waiter = { resolve, reject };
        run(request);
      });
    },
    drawingChanged() {
      // The pad settled on a new drawing: read it again with the run's and the compared networks.
      if (!panel.ready) return;
      showNewestGuess();
      compare();
    },
  };
}
