// The guided tour: the story of 3Blue1Brown's video "But what is a neural network?",
// told in its order on the page's own live parts.  Each step is a few plain sentences
// about the network in use (read from /api/model) and highlights the parts it talks
// about.  Next and Back step, Escape or "End the tour" close it; the focus goes to each
// step's heading and back to where it was when the tour ends, and every step is
// announced through the page's live region.
"use strict";

import { hiddenWords, outputWords, squash } from "./story.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function curve(name, label) {
  // A small plot of f(z) for z in [-6, 6] (sigmoid, ReLU or tanh), as an SVG role=img.
  const f = { sigmoid: (z) => 1 / (1 + Math.exp(-z)), relu: (z) => Math.max(0, z) / 6,
    tanh: (z) => (Math.tanh(z) + 1) / 2 }[name];
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 160 64");
  svg.setAttribute("class", "tour-curve");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const points = Array.from({ length: 49 }, (_, i) => {
    const z = -6 + i * 0.25;
    return `${(80 + z * 12).toFixed(1)},${(58 - 52 * f(z)).toFixed(1)}`;
  });
  svg.innerHTML = `<line class="axis" x1="4" y1="58" x2="156" y2="58"/>`
    + `<line class="axis" x1="80" y1="2" x2="80" y2="62"/>`
    + `<polyline class="line" points="${points.join(" ")}"/>`;
  return svg;
}

function steps(ctx) {
  // The tour's steps for the network in use: {title, targets: [selectors], text:
  // [sentences], figure?, enter?}.  ctx: the hooks given to the Tour.
  const model = ctx.model();
  const pinned = ctx.pinned();
  const facts = {
    model,
    sizes: model.sizes,
    f: squash(model.activation),
    guess: ctx.guess(),
    bias: pinned ? model.biases[pinned.layer - 1][pinned.index] : null,
    pinSomething: ctx.pinSomething,
  };
  return [...neurons(facts), ...arithmetic(facts), ...lessons()];
}

function neurons({ sizes, guess, pinSomething }) {
  // The video's first part: neurons, the inputs, the layers, the hope, the weights.
  return [
    { title: "A neuron holds a number", targets: [".diagram-wrap"], text: [
      "In the video a neuron is simply a thing that holds a number, its activation. "
      + "Each circle in this diagram is a neuron, and the brighter it is, the bigger its number; "
      + "black is 0.",
      "Draw a digit on the pad and watch the circles light up." ] },
    { title: "The 784 inputs", targets: [".seen", ".mini", "#pad"], text: [
      `Your drawing is shrunk to ${Math.sqrt(sizes[0])} × ${Math.sqrt(sizes[0])} = ${sizes[0]} pixels, `
      + "like the MNIST digits the network learned from. Each pixel is a number from 0 (black) to 1 (white).",
      `Those ${sizes[0]} numbers are the first layer of neurons: the small picture beside the guess, `
      + "and the picture at the left of the diagram." ] },
    { title: "The layers", targets: [".diagram-wrap"], text: [
      `After the inputs come ${hiddenWords(sizes)}, and then the last layer: 10 neurons, one per digit. `
      + "Each layer's activations are worked out from the layer before it; the lines show the strongest pushes.",
      `The output neuron that lights up most is the guess${guess === null ? "" : `: right now ${guess}`}.` ] },
    { title: "The hope: edges and loops", targets: ["#layer1-grid"], text: [
      "The video hopes that the first hidden layer picks out little edges, the second "
      + "loops and lines, and the outputs the digits made of them. Here is each first-layer "
      + "neuron's set of weights, drawn as a picture.",
      "Look for yourself: in a trained network few look like clean edges. Most are blotchy "
      + "patterns of red and blue spread over much of the picture, and a stroke is seen by "
      + "several neurons at once. Choose one to see the test digits that light it up most." ] },
    { title: "Weights", targets: ["#neuron"], enter: pinSomething, text: [
      "Every connection carries a weight: a number saying how much one neuron's activation "
      + "counts for the next. A neuron adds up the activations before it, each times its weight: "
      + "w₁a₁ + w₂a₂ + … .",
      "A first-layer neuron has one weight per pixel, shown here as a picture: red where ink "
      + "raises its sum (a positive weight), blue where ink lowers it (negative), white near zero." ] },
  ];
}

function arithmetic({ model, sizes, f, bias }) {
  // Then what a neuron computes: the bias, the sigmoid, the formula for a layer, ReLU.
  return [
    { title: "Then the bias", targets: ["#neuron"], text: [
      "To its weighted sum the neuron adds one more number, its bias: how high the sum must "
      + "be before the neuron lights up. A bias of −10 means “stay dark unless the sum is over 10”.",
      bias === null ? "Pin a neuron to see its bias."
        : `The pinned neuron's bias is ${bias.toFixed(2)}.` ] },
    { title: "The sigmoid", targets: ["#lede .math", "#neuron"], figure: () => curve("sigmoid",
      "The sigmoid: an S-shaped curve from 0 on the left to 1 on the right, ½ in the middle"), text: [
      "The sum can be any number, but an activation should lie between 0 and 1. The sigmoid "
      + "function, σ, squashes it: a very negative sum gives almost 0, a very positive one "
      + "almost 1, and 0 gives ½.",
      model.activation === "sigmoid" ? "This network's hidden layers use the sigmoid: the pinned "
        + "neuron's activation is σ of its weighted sum plus its bias."
        : `This network's hidden layers use ${f.words} instead (see the ReLU step).` ] },
    { title: `All at once: a′ = ${f.symbol}(W a + b)`, targets: ["#lede .math", ".diagram-wrap"], text: [
      "Write one layer's activations as a column of numbers a, every neuron's weights as "
      + "one row of a table (a matrix) W, and the biases as a column b. Then the next layer's "
      + `activations are a′ = ${f.symbol}(W a + b): multiply, add the biases, squash.`,
      `The whole network is that, once per layer: ${sizes.length - 1} times here, with `
      + `${model.n_parameters.toLocaleString("en")} weights and biases in all; the last time gives `
      + `${outputWords(model.output)}.` ] },
    { title: "ReLU", targets: ["#model-info"], figure: () => curve("relu",
      "ReLU: zero for every negative sum, then a straight line rising"), text: [
      "The video ends on a note: few networks today use the sigmoid. Most use ReLU, the "
      + "“rectified linear unit”: zero for a negative sum, the sum itself otherwise, max(0, sum). "
      + "Deep networks learn more easily with it.",
      `This network's hidden layers use ${f.words}. You can train one of each in the Train `
      + "section and use it on the page." ] },
  ];
}

function lessons() {
  // What the network is not, and where its numbers come from.
  return [
    { title: "Fool it, knock it out", targets: ["#fool"], text: [
      "The network does not see a digit the way you do. “Fool the network” changes your "
      + "drawing, a tiny amount per pixel, until it answers a digit you choose, while you "
      + "still see your own digit.",
      "In the Neurons section you can knock a neuron out, holding its activation at 0, and "
      + "see which digits the network then gets wrong: most neurons matter a little for many "
      + "digits rather than a lot for one." ] },
    { title: "Training", targets: ["#train"], text: [
      "Where do the weights and biases come from? No one sets them. Training starts from "
      + "random numbers, shows the network thousands of labelled MNIST digits, and changes "
      + "every weight and bias a little to make its mistakes (the cost) smaller: the video's "
      + "next chapter, gradient descent.",
      "Press “As in the video” for the video's own setup, then Train, and watch the first "
      + "layer's weights go from noise to strokes, an epoch a second." ] },
    { title: "How it learns", targets: [".learn-label", "#learn-result"], text: [
      "In “How it learns”, tell the network what your drawing is. It says how wrong it is "
      + "(the cost), what each output wants, and how every weight would be nudged to make "
      + "the cost smaller: backpropagation.",
      "Take a step downhill on a copy of the network and watch the cost fall." ] },
    { title: "Many examples, one landscape", targets: ["#learn-many", "#learn-land"], text: [
      "Training averages those nudges over a small random batch of examples: nearly the "
      + "right direction, for a fraction of the work. “Average over many” shows how near.",
      "The landscape is the cost around the network: gradient descent rolls downhill on it." ] },
  ];
}

export class Tour {
  // hooks: announce(text); model() -> /api/model's answer; guess() -> the digit shown
  // or null; pinned() -> the pinned neuron or null; pinSomething() pins a first-layer
  // neuron if none is.
  constructor(hooks) {
    this.hooks = hooks;
    this.index = -1;
    this.returnTo = null;
    this.box = $("tour");
    $("tour-start").addEventListener("click", () => this.open(0));
    $("tour-next").addEventListener("click", () => this.go(this.index + 1));
    $("tour-back").addEventListener("click", () => this.go(this.index - 1));
    $("tour-close").addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !this.isOpen() || document.querySelector("dialog[open]")) return;
      event.stopPropagation();  // Escape ends the tour, and does not unpin the neuron too
      this.close();
    }, true);
    window.addEventListener("resize", () => this.isOpen() && this.place());
  }

  isOpen() {
    return this.index >= 0;
  }

  open(index) {
    if (!this.hooks.model()) return;
    if (!this.isOpen()) this.returnTo = document.activeElement;
    this.box.hidden = false;
    document.body.classList.add("touring");
    this.go(index);
  }

  go(index) {
    const all = steps(this.hooks);
    if (index >= all.length) {
      this.close();
      return;
    }
    this.index = Math.max(0, index);
    if (all[this.index].enter) all[this.index].enter();
    const step = steps(this.hooks)[this.index];  // after enter(): its numbers now
    $("tour-count").textContent = `Step ${this.index + 1} of ${all.length}`;
    $("tour-title").textContent = step.title;
    const text = $("tour-text");
    text.textContent = "";
    for (const sentence of step.text) {
      const p = document.createElement("p");
      p.textContent = sentence;
      text.appendChild(p);
    }
    if (step.figure) text.appendChild(step.figure());
    $("tour-back").disabled = this.index === 0;
    $("tour-next").textContent = this.index === all.length - 1 ? "Finish" : "Next";
    this.highlight(step.targets);
    $("tour-title").focus({ preventScroll: true });
    this.hooks.announce(`Tour, step ${this.index + 1} of ${all.length}: ${step.title}. ${step.text.join(" ")}`);
  }

  highlight(selectors) {
    for (const node of document.querySelectorAll(".tour-target")) node.classList.remove("tour-target");
    // the parts shown at this size (a phone leaves some out)
    this.targets = selectors.map((s) => document.querySelector(s)).filter((n) => n && n.checkVisibility());
    for (const node of this.targets) node.classList.add("tour-target");
    const first = this.targets[0];
    if (first) {
      // A part too wide to leave a corner free goes to the top, the tour's box below it
      // (on a phone, always); another comes into view, in the middle, if it is not.
      const box = first.getBoundingClientRect();
      const wide = window.innerWidth < 640 || box.width > window.innerWidth - this.box.offsetWidth - 24;
      if (wide) first.scrollIntoView({ block: "start" });
      else if (box.top < 0 || box.bottom > window.innerHeight) first.scrollIntoView({ block: "center" });
    }
    this.place();
  }

  place() {
    // Put the tour's box in the corner (or, on a phone, at the edge) where it hides
    // the least of the highlighted parts.
    const box = this.box;
    const w = box.offsetWidth, h = box.offsetHeight;
    const W = window.innerWidth, H = window.innerHeight, m = 8;
    const spots = W < 640
      ? [[m, H - h - m], [m, m]]
      : [[W - w - m, H - h - m], [m, H - h - m], [W - w - m, m], [m, m]];
    // a phone shows the first part at the top, scrolled there: keep that one in sight
    const shown = W < 640 ? this.targets.slice(0, 1) : this.targets;
    const hidden = ([x, y]) => shown.reduce((sum, node) => {
      const r = node.getBoundingClientRect();
      const dx = Math.max(0, Math.min(x + w, r.right) - Math.max(x, r.left));
      const dy = Math.max(0, Math.min(y + h, r.bottom) - Math.max(y, r.top));
      return sum + dx * dy;
    }, 0);
    const [x, y] = spots.reduce((best, spot) => (hidden(spot) < hidden(best) ? spot : best));
    box.style.left = `${x}px`;
    box.style.top = `${y}px`;
  }

  close() {
    if (!this.isOpen()) return;
    this.index = -1;
    this.box.hidden = true;
    document.body.classList.remove("touring");
    for (const node of document.querySelectorAll(".tour-target")) node.classList.remove("tour-target");
    const back = this.returnTo && this.returnTo.isConnected && this.returnTo !== document.body
      ? this.returnTo : $("tour-start");
    back.focus();
    this.hooks.announce("The tour is over.");
  }
}
