// The "train your own" panel: start a run (POST /api/train), watch it epoch by epoch
// (GET /api/train/{id}/events), stop it (DELETE), then use, compare and download the
// networks the server holds (GET /api/models).
"use strict";

import { paintWeights } from "./colours.js";

const $ = (id) => document.getElementById(id);
const COST = "#ff7a5c";       // the cost curve (as --pos)
const ACCURACY = "#5ee6ff";   // validation accuracy (as --pin)
const TRAINING = "#a3acbb";   // training accuracy (as --dim)

async function call(url, options = {}) {
  // fetch, with the server's {"error": ...} as the thrown message.
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
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
  };
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
}

// ---- the curves -------------------------------------------------------------------------

function drawCurves(canvas, epochs, planned) {
  // Cost (left scale) and accuracy (right scale, 0-100%) against the epoch.
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
  const yCost = (c) => top + ph * (1 - c / maxCost);
  const yAcc = (a) => top + ph * (1 - a);
  g.fillStyle = "#a3acbb";
  g.textAlign = "center";
  for (const epoch of [0, last]) g.fillText(String(epoch), x(epoch), top + ph + 14);
  g.fillText("epoch", left + pw / 2, top + ph + 14);
  // chance: one digit in ten, where an untrained network starts
  g.strokeStyle = "#8b95a7";
  g.setLineDash([2, 4]);
  g.beginPath();
  g.moveTo(left, yAcc(0.1));
  g.lineTo(left + pw, yAcc(0.1));
  g.stroke();
  g.setLineDash([]);
  g.textAlign = "left";
  g.fillText("chance, 10%", left + 4, yAcc(0.1) - 4);
  g.textAlign = "right";
  g.fillStyle = COST;
  g.fillText(maxCost.toFixed(2), left - 4, top + 10);
  g.fillText("0", left - 4, top + ph);
  g.textAlign = "left";
  g.fillStyle = ACCURACY;
  g.fillText("100%", left + pw + 4, top + 10);
  g.fillText("0%", left + pw + 4, top + ph);
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
    g.fillText(percent(newest.val_accuracy), x(newest.epoch) - 4, yAcc(newest.val_accuracy) + 16);
  }
  canvas.setAttribute("aria-label", newest
    ? `Learning curves after epoch ${newest.epoch} of ${planned}: cost ${newest.cost.toFixed(3)}, `
      + `validation accuracy ${percent(newest.val_accuracy)}`
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
  // drawing(): the pad as /api/predict takes it, or null; useModel(id): switch the page.
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
    const body = drawing();
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
    const label = (m) => `${m.id}: ${m.sizes.join("-")} ${m.activation}`
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
    const body = drawing();
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

  function follow(id, planned) {
    panel.job = { id, planned, epochs: [] };
    $("train-guess").dataset.updates = "0";
    const source = panel.source = new EventSource(`/api/train/${encodeURIComponent(id)}/events`);
    source.addEventListener("epoch", (event) => {
      const data = JSON.parse(event.data);
      panel.job.epochs.push(data);
      drawCurves($("train-curves"), panel.job.epochs, planned);
      drawWeights($("train-weights"), data.weights);
      const val = data.val_accuracy == null ? "" : `, ${percent(data.val_accuracy)} of the 5,000 held-out digits right`;
      status(`Epoch ${data.epoch} of ${planned}: cost ${data.cost.toFixed(3)}${val} (${data.seconds.toFixed(1)} s).`);
      showNewestGuess();
    });
    source.addEventListener("done", async (event) => {
      source.close();
      const data = JSON.parse(event.data);
      running(false);
      const why = data.stopped === "interrupted" ? `Stopped after ${data.epochs} epochs`
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
    running(true);
    $("train-status").dataset.state = "running";
    try {
      const { id } = await post("/api/train", request);
      const what = request.sizes ? request.sizes.join("-") : "the default network";
      status(`Training ${what} (${id}): loading the digits…`);
      follow(id, request.epochs || panel.defaults.epochs);
      return true;
    } catch (err) {
      running(false);
      $("train-status").dataset.state = "error";
      status(`Cannot train: ${err.message}`, true);
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
    try {
      await call(`/api/train/${encodeURIComponent(panel.job.id)}`, { method: "DELETE" });
      status("Stopping after the current batch…");
    } catch (err) {
      status(`Cannot stop: ${err.message}`, true);
    }
  });

  $("train-reset").addEventListener("click", () => panel.defaults && setForm(panel.defaults));
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
      const l = options.limits;
      $("train-epochs").max = l.epochs;
      $("train-batch").max = l.batch_size;
      $("train-augment").max = l.augment;
      $("train-limits").textContent = `At most ${l.hidden_layers} hidden layers of at most `
        + `${l.hidden_width} neurons, ${l.epochs} epochs, batches of ${l.batch_size}, `
        + `shifts of ${l.augment} pixels; one training at a time.`;
      $("train-start").disabled = false;
      await refreshModels(null);
      if (options.running) {
        running(true);
        follow(options.running.id, options.running.epochs);
        status(`A training is running (${options.running.id}); following it.`);
      }
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
