// "How it learns": tell the network what your drawing is, and see what that one example
// asks of it, in the order of 3Blue1Brown's videos on gradient descent and
// backpropagation: the cost; each output's wish (−∂C/∂z, up for the right digit);
// what the outputs together want from each hidden layer (−∂C/∂a); how each first-layer
// weight would change (−∂C/∂W); the few connections that matter most; a step downhill
// on a copy of the network; the average over many examples; the cost landscape.
// Requests go out only when the learner asks, one of each kind at a time
// (POST /api/gradient, /api/step, /api/minibatch, /api/landscape).
"use strict";

import {
  cosineChart, heatKey, landscapeMap, nudgePictures, scaleKey, signed, signedBars,
} from "./learnplots.js";

const $ = (id) => document.getElementById(id);
const SIZES = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 60000];
const SEED = 0;
const fixed = (v, digits = 2) => v.toFixed(digits).replace("-", "−");  // a real minus sign

async function post(path, body) {
  // POST a JSON body; the answer, or an Error carrying the server's one-line message.
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

export function wrongness(cost) {
  // The cost of one example in words ("how wrong it is").
  if (cost < 0.05) return "hardly wrong at all";
  if (cost < 0.3) return "a little wrong";
  if (cost < 1) return "quite wrong";
  return "very wrong";
}

function manyWords(batches, at) {
  // What the cosines say, in words: how far a mini-batch's average points the way of
  // the average over all 60,000 images (batches in increasing size; at(n): the first of
  // at least n images).
  const first = at(1).cosine, hundred = at(100);
  const enough = batches.find((b) => b.cosine > 0.9);
  const how = (c) => (c > 0.9 ? "almost exactly" : c > 0.5 ? "roughly" : c > 0.2 ? "only loosely" : "hardly at all");
  return `One image's nudges point ${how(first)} the way of the average over all 60,000 `
    + `(cosine ${fixed(first)}: 1 is the same direction, 0 at right angles, −1 opposite); `
    + `the average over ${hundred.size} images: ${fixed(hundred.cosine)}`
    + (enough ? `; from ${enough.size.toLocaleString("en")} images it is over 0.9.` : ".")
    + " Stochastic gradient descent steps along a small random batch's average: each step is "
    + "cheap but stumbles, and many of them together go downhill.";
}

export class Learn {
  // hooks: input() -> the 784 inputs the network saw last, or null; announce(text);
  // mark(links) highlights connections [{l, j, k, w, c}] in the diagram (none: []);
  // labelChanged() puts the label in the address.
  constructor(hooks) {
    this.hooks = hooks;
    this.model = null;
    this.modelKey = null;    // the page's model id (null: the served one)
    this.label = null;       // the digit the learner says the drawing is
    this.answer = null;      // /api/gradient's answer shown
    this.pixels = null;      // the input it was computed for
    this.stepped = null;     // the id of the newest stepped copy, or null
    this.steps = 0;
    this.busy = new Set();   // kinds of request in flight
    this.again = false;      // a label chosen while a gradient was on its way
    this.many = null;        // /api/minibatch's answer for this model
    this.land = null;        // /api/landscape's answer for this model
    this.buildLabels();
    $("learn-step").addEventListener("click", () => this.step());
    $("learn-reset").addEventListener("click", () => this.reset(true));
    $("learn-many").addEventListener("toggle", () => $("learn-many").open && this.averageOverMany());
    $("learn-land").addEventListener("toggle", () => $("learn-land").open && this.landscape());
  }

  buildLabels() {
    const row = $("learn-labels");
    for (let d = 0; d < 10; d++) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = String(d);
      button.dataset.digit = d;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => this.choose(d));
      row.appendChild(button);
    }
  }

  setModel(model, id = null) {
    // The network the page uses changed: what was worked out for another no longer holds.
    this.model = model;
    this.modelKey = id;
    this.many = this.land = null;
    $("learn-count").textContent = `${model.n_parameters.toLocaleString("en")} weights and biases`;
    $("learn-many-text").textContent = "";
    $("learn-land-text").textContent = "";
    this.clear();
    if ($("learn-many").open) this.averageOverMany();
    if ($("learn-land").open) this.landscape();
  }

  clear() {
    // Back to "nothing computed" (the chosen label is kept).
    this.answer = null;
    this.pixels = null;
    this.reset(false);
    $("learn-result").hidden = true;
    this.hooks.mark([]);
  }

  drawingChanged(input) {
    // The network now sees `input` (784 values, or null): if it is not the picture the
    // numbers shown were worked out for, they no longer hold.
    const same = input && this.pixels && input.every((v, i) => v === this.pixels[i]);
    if (!this.answer || same) return;
    this.clear();
    $("learn-status").textContent = this.label === null ? ""
      : `The drawing changed: press ${this.label} again to work out what it asks of the network now.`;
  }

  async choose(digit) {
    // The learner says the drawing is `digit`: mark it, keep it in the address, compute.
    this.label = digit;
    for (const b of $("learn-labels").children) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.digit) === digit));
    }
    this.hooks.labelChanged();
    await this.compute();
  }

  async compute() {
    // POST /api/gradient for the drawing and the label, one at a time; a label chosen
    // meanwhile is asked for when this answer is in.
    if (this.label === null || !this.model) return;
    if (this.busy.has("gradient")) {
      this.again = true;
      return;
    }
    const pixels = this.hooks.input();
    if (!pixels) {
      $("learn-status").textContent = "Draw a digit or load one first: the label is for that drawing.";
      this.hooks.announce($("learn-status").textContent);
      return;
    }
    const label = this.label;
    this.busy.add("gradient");
    $("learn-status").textContent = `Working out what “this is a ${label}” asks of the network…`;
    try {
      const answer = await post("/api/gradient", this.body({ pixels, label }));
      this.answer = { ...answer, label };
      this.pixels = pixels;
      this.reset(false);
      this.show();
    } catch (err) {
      $("learn-status").textContent = `Could not work it out: ${err.message}`;
      this.hooks.announce($("learn-status").textContent);
    } finally {
      this.busy.delete("gradient");
      if (this.again) {
        this.again = false;
        this.compute();
      }
    }
  }

  body(extra) {
    return this.modelKey ? { ...extra, model: this.modelKey } : extra;
  }

  show() {
    const a = this.answer;
    $("learn-result").hidden = false;
    $("learn-status").textContent = "";
    const words = this.costWords(a);
    $("learn-cost").textContent = words;
    this.showWishes(a);
    this.showNudges(a);
    this.showTop(a);
    this.hooks.announce(`You say it is a ${a.label}. ${words}`);
  }

  costWords(a) {
    // "How wrong it is", then the number beside its name.
    const p = a.probabilities[a.label];
    const guess = a.digit === a.label ? `It guesses ${a.digit} too` : `It guesses ${a.digit}`;
    const how = a.loss === "cross-entropy"
      ? `the cost (cross-entropy, −ln of that chance) is ${a.cost.toFixed(3)}`
      : `the cost (${a.loss}: the squared differences from the right answer, added up) is ${a.cost.toFixed(3)}`;
    return `How wrong it is: ${wrongness(a.cost)}. ${guess}, and gives ${a.label} a `
      + `${(100 * p).toFixed(1)}% chance; ${how}.`;
  }

  showWishes(a) {
    // The outputs' wishes, then what they ask of each hidden layer, last layer first.
    const L = a.deltas.length;
    const digits = Array.from({ length: 10 }, (_, d) => String(d));
    signedBars($("learn-out-bars"), a.deltas[L - 1], digits,
      "What each output wants: its nudge, −∂C/∂z", a.label);
    const box = $("learn-wants");
    box.textContent = "";
    for (let l = a.wants.length; l >= 1; l--) {
      const figure = document.createElement("figure");
      figure.className = "learn-bars";
      const bars = document.createElement("div");
      const n = a.wants[l - 1].length;
      const names = Array.from({ length: n }, (_, j) => String(j + 1));
      signedBars(bars, a.wants[l - 1], names,
        `What the layer after asks of layer ${l}'s neurons, −∂C/∂a`);
      const caption = document.createElement("figcaption");
      caption.textContent = `what it asks of layer ${l}'s ${n} neurons (−∂C/∂a): up means “be brighter”, down “be darker”`;
      figure.append(bars, caption);
      box.appendChild(figure);
    }
  }

  showNudges(a) {
    // The first layer's weight nudges, one picture per neuron, on one shared scale.
    const rows = a.weight_nudges[0];
    const scale = Math.max(1e-12, ...rows.map((r) => Math.max(...r.map(Math.abs))));
    nudgePictures($("learn-nudges"), rows, scale);
    scaleKey($("learn-key"), scale);
    $("learn-key-low").textContent = signed(-scale, 2);
    $("learn-key-high").textContent = signed(scale, 2);
    $("learn-nudges").setAttribute("aria-label", `How each of the ${rows.length} first-layer `
      + `neurons' 784 incoming weights would change, as pictures: red up, blue down, `
      + `all on one scale from ${signed(-scale, 2)} to ${signed(scale, 2)}`);
  }

  showTop(a) {
    // The connections whose nudge is largest, listed and highlighted in the diagram.
    const L = this.model.sizes.length - 1;
    const name = (layer, index) => (layer === 0 ? `pixel (row ${Math.floor(index / 28) + 1}, column ${(index % 28) + 1})`
      : layer === L ? `output ${index}` : `layer ${layer}, neuron ${index + 1}`);
    const list = $("learn-top");
    list.textContent = "";
    for (const t of a.top) {
      const li = document.createElement("li");
      li.textContent = `${name(t.layer - 1, t.from)} → ${name(t.layer, t.to)}: ${signed(t.nudge)}`;
      li.className = t.nudge > 0 ? "pos" : "neg";
      list.appendChild(li);
    }
    this.hooks.mark(a.top.map((t) => ({ l: t.layer - 1, j: t.to, k: t.from, w: t.nudge, c: t.nudge })));
  }

  async step() {
    // One step downhill for this drawing on a copy (the newest stepped one, if any).
    if (!this.answer || this.busy.has("step")) return;
    const lr = Number($("learn-lr").value);
    if (!(lr > 0)) {
      $("learn-step-result").textContent = `The learning rate must be a positive number, not “${$("learn-lr").value}”.`;
      return;
    }
    this.busy.add("step");
    $("learn-step").disabled = true;
    try {
      const from = this.stepped || this.modelKey;
      const body = { pixels: this.pixels, label: this.answer.label, lr, ...(from ? { model: from } : {}) };
      const s = await post("/api/step", body);
      this.stepped = s.model;
      this.steps += 1;
      this.record(s, lr);
    } catch (err) {
      $("learn-step-result").textContent = `No step: ${err.message}`;
      this.hooks.announce($("learn-step-result").textContent);
    } finally {
      this.busy.delete("step");
      $("learn-step").disabled = false;
    }
  }

  record(s, lr) {
    // A row in the table of steps, and one sentence, announced.
    const row = document.createElement("tr");
    const cells = [String(this.steps), String(lr), s.cost_before.toFixed(4), s.cost_after.toFixed(4),
      String(s.digit_before), String(s.digit_after)];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
    }
    $("learn-steps-body").appendChild(row);
    $("learn-steps").hidden = false;
    $("learn-reset").disabled = false;
    $("learn-step").dataset.model = s.model;
    const p = s.probabilities_after[this.answer.label];
    const text = `Step ${this.steps}: the cost went from ${s.cost_before.toFixed(4)} to `
      + `${s.cost_after.toFixed(4)}; the guess from ${s.digit_before} to ${s.digit_after}, `
      + `and ${this.answer.label} now gets ${(100 * p).toFixed(1)}%. (A copy, network ${s.model}; the page's own network is unchanged.)`;
    $("learn-step-result").textContent = text;
    this.hooks.announce(text);
  }

  reset(say) {
    // Forget the stepped copies: the next step starts from the page's network again.
    this.stepped = null;
    this.steps = 0;
    $("learn-steps-body").textContent = "";
    $("learn-steps").hidden = true;
    $("learn-reset").disabled = true;
    delete $("learn-step").dataset.model;
    $("learn-step-result").textContent = say ? "Reset: the next step starts from the page's network again." : "";
    if (say) this.hooks.announce($("learn-step-result").textContent);
  }

  async averageOverMany() {
    // POST /api/minibatch once per model, when "Average over many" is opened.
    if (this.many || this.busy.has("many") || !this.model) return;
    this.busy.add("many");
    const text = $("learn-many-text");
    text.textContent = "Drawing mini-batches of 1 to 60,000 training images…";
    try {
      const answer = await post("/api/minibatch", this.body({ sizes: SIZES, seed: SEED }));
      this.many = answer;
      const batches = [...answer.batches].sort((x, y) => x.size - y.size);
      cosineChart($("learn-cosine"), batches);
      const at = (n) => batches.find((b) => b.size >= n) || batches[batches.length - 1];
      text.textContent = manyWords(batches, at);
      $("learn-cosine").setAttribute("aria-label", `Cosine to the full gradient against the mini-batch size: `
        + batches.map((b) => `${b.size.toLocaleString("en")}: ${fixed(b.cosine)}`).join("; "));
      this.hooks.announce(text.textContent);
    } catch (err) {
      text.textContent = `Could not average: ${err.message}`;
    } finally {
      this.busy.delete("many");
    }
  }

  async landscape() {
    // POST /api/landscape once per model, when the landscape is opened.
    if (this.land || this.busy.has("land") || !this.model) return;
    this.busy.add("land");
    const text = $("learn-land-text");
    text.textContent = "Working out the cost all around the network…";
    try {
      const answer = await post("/api/landscape", this.body({ size: 21, span: 1, seed: SEED }));
      this.land = answer;
      const { low, high } = landscapeMap($("learn-map"), answer);
      heatKey($("learn-map-key"));
      $("learn-map-low").textContent = low.toPrecision(3);
      $("learn-map-high").textContent = high.toPrecision(3);
      const mid = answer.cost[(answer.betas.length - 1) / 2][(answer.alphas.length - 1) / 2];
      text.textContent = `The cost over 10,000 training images, for networks around this one: `
        + `left to right along the downhill direction, bottom to top along a random one. The ring `
        + `is the network itself (cost ${mid.toFixed(3)}); dark is low cost, bright high `
        + `(${low.toPrecision(3)} to ${high.toPrecision(3)}, colours on a log scale). Gradient descent `
        + "rolls downhill on this surface, into the dark valley.";
      $("learn-map").setAttribute("aria-label", `The cost landscape around the network: ${text.textContent}`);
      $("learn-map").dataset.cells = String(answer.cost.length * answer.cost[0].length);
      this.hooks.announce(`The landscape is drawn; the network's cost is ${mid.toFixed(3)}.`);
    } catch (err) {
      text.textContent = `Could not draw the landscape: ${err.message}`;
    } finally {
      this.busy.delete("land");
    }
  }
}
