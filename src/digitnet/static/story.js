// The network in use, in words a viewer of 3Blue1Brown's "But what is a neural
// network?" knows: how many layers of how many neurons, which squashing function, and
// the page's one formula a′ = f(W a + b) with f that function.  Read from /api/model
// ({sizes, activation, output}), so the lede and the captions follow the network the
// page uses.
"use strict";

const NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

const FUNCTIONS = {
  sigmoid: { symbol: "σ", name: "the sigmoid σ", words: "the sigmoid σ, which squashes any sum into 0 to 1" },
  relu: { symbol: "ReLU", name: "ReLU", words: "ReLU, which keeps a positive sum and turns a negative one into 0" },
  tanh: { symbol: "tanh", name: "tanh", words: "tanh, which squashes any sum into −1 to 1" },
};

export function squash(name) {
  // -> {symbol, words} of a hidden layer's activation function
  return FUNCTIONS[name] || { symbol: name, name, words: name };
}

export function count(n) {
  return n < NUMBERS.length ? NUMBERS[n] : String(n);
}

export function hiddenWords(sizes) {
  // [784, 16, 16, 10] -> "two hidden layers of 16 neurons"; [784, 100, 30, 10] ->
  // "hidden layers of 100 and 30 neurons"; [784, 10] -> "no hidden layer"
  const hidden = sizes.slice(1, -1);
  if (!hidden.length) return "no hidden layer";
  if (hidden.length === 1) return `one hidden layer of ${hidden[0]} neurons`;
  if (hidden.every((n) => n === hidden[0])) {
    return `${count(hidden.length)} hidden layers of ${hidden[0]} neurons`;
  }
  return `hidden layers of ${hidden.slice(0, -1).join(", ")} and ${hidden.at(-1)} neurons`;
}

export function outputWords(output) {
  return output === "softmax"
    ? "the ten outputs, made into probabilities that add up to 1 (softmax)"
    : "the ten outputs, each squashed into 0 to 1 by the sigmoid";
}

export function writeLede(node, model) {
  // The header's sentences about this network, the formula among them.
  const f = squash(model.activation);
  const what = model.sizes.length > 2 ? `flow through ${hiddenWords(model.sizes)}` : "go straight to the outputs";
  const how = model.sizes.length > 2
    ? ` Each hidden neuron adds up the layer before it times its weights, plus its bias, squashed by ${f.name}: `
    : " Each output adds up the pixels times its weights, plus its bias: ";
  node.textContent = "";
  const formula = document.createElement("span");
  formula.className = "math";
  const out = model.output === "softmax" ? "softmax" : "σ";
  formula.textContent = `a′ = ${model.sizes.length > 2 ? f.symbol : out}(W a + b)`;
  const more = document.createElement("span");
  more.className = "lede-more";  // left out on a phone, where the tour tells it
  more.append(how, formula, ".");
  node.append(`Draw a digit: its ${model.sizes[0]} pixels ${what}.`, more,
    " The biggest of the ten outputs is the network's guess.");
}
