// The neuron explorer: the 16 first-layer weight pictures lit by the drawing, the chosen
// neuron's weights (a picture for layer 1, bars for deeper layers), the MNIST test digits
// it answers most, the input it wants, a switch that knocks it out; and the nudge that
// makes the network say a chosen digit (GET /api/neuron, POST /api/nudge).
"use strict";

import { paintWeights, weightBars } from "./colours.js";
import { paintGrey } from "./guess.js";

// How sure the network must be of the chosen digit before the nudge stops.
const CONFIDENT = 0.9;
const $ = (id) => document.getElementById(id);

export class Explorer {
  // hooks: pin(neuron) chooses a neuron for the whole page; knockoutsChanged() asks for
  // a new guess; applyNudge(pixels, answer) puts the nudged input on the pad;
  // input() is the 784 inputs the network saw last (or null).
  constructor(hooks) {
    $("nudge-until").textContent = `${100 * CONFIDENT}%`;
    this.hooks = hooks;
    this.model = null;
    this.knockouts = new Set();   // "layer.index" of hidden neurons switched off
    this.shown = null;            // "layer.index" of the neuron in the panel
    this.cache = new Map();       // "layer.index" -> /api/neuron's answer
    this.cells = [];
    this.view = null;
    this.frame = null;
    $("knockout-switch").addEventListener("change", (e) => this.toggle(e.target.checked));
    $("knockout-clear").addEventListener("click", () => this.clearKnockouts());
    $("nudge").addEventListener("click", () => this.nudge());
  }

  setModel(model, id = null) {
    // The network the page uses (id null: the served one); what was asked of another
    // network, and its knock-outs, no longer apply.
    this.model = model;
    this.modelKey = id;
    this.cache.clear();
    this.knockouts.clear();
    this.shown = null;
    const n = model.sizes[1];
    $("explorer-count").textContent = model.sizes.length > 2
      ? `The ${n} first-layer neurons` : `The ${n} output neurons`;
    const grid = $("layer1-grid");
    grid.textContent = "";
    this.cells = model.weights[0].map((W, j) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "cell";
      button.dataset.index = j;
      button.setAttribute("aria-pressed", "false");
      button.innerHTML = `<canvas width="28" height="28" aria-hidden="true"></canvas>`
        + `<span class="cell-name"><span class="visually-hidden">Layer 1, neuron </span>${j + 1}</span>`
        + `<span class="cell-act">–</span><span class="visually-hidden cell-off"></span>`;
      paintWeights(button.querySelector("canvas"), W);
      button.addEventListener("click", () => this.hooks.pin({ layer: 1, index: j }));
      grid.appendChild(button);
      return button;
    });
  }

  knockoutList() {
    return [...this.knockouts].map((key) => key.split(".").map(Number));
  }

  name({ layer, index }) {
    const last = this.model.sizes.length - 1;
    return layer === last ? `Output ${index}` : `Layer ${layer}, neuron ${index + 1}`;
  }

  update(view) {
    // The drawing or the chosen neuron changed: redrawn at the next frame, once however
    // often it is asked, so the page's own redraw (the diagram, while a click is on its
    // way) is not held up by this panel.
    this.view = view;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.draw(this.view);
    });
  }

  draw({ acts, pinned }) {
    if (!this.model) return;
    const first = acts ? acts[1] : null;
    this.cells.forEach((cell, j) => {
      const a = first ? first[j] : 0;
      cell.style.setProperty("--a", Math.max(0, Math.min(1, a)).toFixed(3));
      cell.querySelector(".cell-act").textContent = first ? a.toFixed(2) : "–";
      const off = this.knockouts.has(`1.${j}`);
      cell.classList.toggle("off", off);
      const chosen = Boolean(pinned && pinned.layer === 1 && pinned.index === j);
      cell.setAttribute("aria-pressed", String(chosen));
      cell.querySelector(".cell-off").textContent = off ? " (knocked out)" : "";
    });
    const key = pinned ? `${pinned.layer}.${pinned.index}` : null;
    if (key !== this.shown) this.show(pinned);
  }

  async show(neuron) {
    const key = neuron ? `${neuron.layer}.${neuron.index}` : null;
    this.shown = key;
    $("explore-empty").hidden = Boolean(neuron);
    $("explore-neuron").hidden = !neuron;
    if (!neuron) return;
    const { layer, index } = neuron;
    const hidden = layer < this.model.sizes.length - 1;
    $("explore-title").textContent = this.name(neuron);
    const W = this.model.weights[layer - 1][index];
    const weights = $("explore-weights");
    weights.hidden = layer > 1;
    $("explore-weights-bars").hidden = layer === 1;
    if (layer === 1) paintWeights(weights, W);
    else weightBars($("explore-weights-bars"), W, `Incoming weights of ${this.name(neuron)}`);
    $("explore-weights-caption").textContent = layer === 1
      ? "its 784 incoming weights, as a 28×28 picture"
      : `its ${W.length} incoming weights, one bar per neuron 1–${W.length} of layer ${layer - 1}: `
        + "red up for a positive weight, blue down for a negative one";
    weights.setAttribute("aria-label", `Incoming weights of ${this.name(neuron)}`);
    $("explore-wants-note").textContent = layer === 1
      ? ": for layer 1 exactly the positive part of the weights, as bright as the weight is large"
      : "";
    $("knockout-row").hidden = !hidden;
    $("knockout-switch").checked = this.knockouts.has(key);
    $("explore-status").textContent = "Asking the network…";
    $("explore-top").textContent = "";
    $("knockout-effect").textContent = "";
    let answer = this.cache.get(key);
    try {
      if (!answer) {
        const which = this.modelKey ? `&model=${encodeURIComponent(this.modelKey)}` : "";
        const response = await fetch(`/api/neuron?layer=${layer}&index=${index}${which}`);
        answer = await response.json();
        if (!response.ok) throw new Error(answer.error || response.statusText);
        this.cache.set(key, answer);
      }
    } catch (err) {
      if (this.shown === key) $("explore-status").textContent = `Could not ask: ${err.message}`;
      return;
    }
    if (this.shown !== key) return;  // another neuron was chosen meanwhile
    $("explore-status").textContent = "";
    paintGrey($("explore-wants"), answer.wants);
    const top = $("explore-top");
    for (const { index: i, label, activation, image } of answer.top) {
      const figure = document.createElement("figure");
      figure.className = "top-image";
      figure.innerHTML = `<img alt="MNIST test digit #${i}, a ${label}" src="${image}">`
        + `<figcaption>a ${label}: ${activation.toFixed(3)}</figcaption>`;
      top.appendChild(figure);
    }
    if (answer.knockout) {
      const { accuracy, per_digit: perDigit } = answer.knockout;
      const worst = perDigit.map((p, d) => [p, d]).sort((a, b) => a[0] - b[0]).slice(0, 3);
      const all = this.model.test_accuracy == null ? ""
        : ` (${(100 * this.model.test_accuracy).toFixed(1)}% with every neuron on)`;
      $("knockout-effect").textContent = `Without it the network gets ${(100 * accuracy).toFixed(1)}% of the test digits right${all}; `
        + `the digits that suffer most: ${worst.map(([p, d]) => `${d}s ${(100 * p).toFixed(0)}% right`).join(", ")}.`;
    }
  }

  setKnockouts(list) {
    // Knock out exactly these hidden neurons ([[layer, index], ...]; others ignored).
    const last = this.model.sizes.length - 1;
    this.knockouts = new Set(list.filter(([l, j]) => l >= 1 && l < last && j >= 0 && j < this.model.sizes[l])
      .map(([l, j]) => `${l}.${j}`));
    this.counted();
  }

  counted() {
    const n = this.knockouts.size;
    $("knockout-count").textContent = n ? `${n} neuron${n === 1 ? "" : "s"} knocked out.` : "";
    $("knockout-clear").hidden = n === 0;
    $("knockout-switch").checked = this.knockouts.has(this.shown);
  }

  toggle(off) {
    if (!this.shown) return;
    if (off) this.knockouts.add(this.shown);
    else this.knockouts.delete(this.shown);
    this.counted();
    this.hooks.knockoutsChanged();
  }

  clearKnockouts() {
    this.knockouts.clear();
    this.counted();
    this.hooks.knockoutsChanged();
  }

  async nudge() {
    const input = this.hooks.input();
    const result = $("nudge-result");
    if (!input) {
      result.textContent = "Draw a digit or load one first: the nudge changes that picture.";
      return;
    }
    const target = Number($("nudge-target").value);
    $("nudge").disabled = true;
    result.textContent = `Nudging towards ${target}…`;
    try {
      const body = { pixels: input, target, until: CONFIDENT };
      if (this.modelKey) body.model = this.modelKey;
      if (this.knockouts.size) body.knockout = this.knockoutList();
      const response = await fetch("/api/nudge", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
      paintGrey($("nudge-before"), input);
      paintGrey($("nudge-after"), answer.pixels);
      $("nudge-pictures").hidden = false;
      const p = answer.probabilities[answer.digit];
      result.textContent = answer.steps === 0
        ? `The network already says ${target}, ${(100 * p).toFixed(0)}% sure: nothing to change.`
        : `Now it says ${answer.digit}, ${(100 * p).toFixed(0)}% sure, after ${answer.steps} small steps. `
          + `No pixel changed by more than ${answer.linf.toFixed(3)} of the way from black to white; `
          + `all the changes together measure ${answer.l2.toFixed(2)} (the square root of the sum `
          + "of every pixel's change squared; a whole pixel from black to white is 1).";
      this.hooks.applyNudge(answer.pixels, answer);
    } catch (err) {
      result.textContent = `No nudge: ${err.message}`;
    } finally {
      $("nudge").disabled = false;
    }
  }
}
