// The network's answer, shared by the page and the notebook widget: the ten outputs as
// bars, the 28x28 input it saw, and why a drawing may be no digit at all.
"use strict";

// When to say that the network has no "not a digit" answer, measured on the 10,000
// MNIST test digits: their ink always spans 20 px (a dot is kept smaller), at most
// 258 of the 784 pixels are over half inked, and a 10-epoch network is under 60%
// sure of 3.4% of them.
const DIGIT_SPAN = 17;
const MOST_INK = 260;
const UNSURE = 0.6;

export function buildBars(list) {
  // Ten <li>s in the <ol> list, one per digit.
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="digit">${d}</span><span class="bar"><span></span></span><span class="value">–</span>`;
    li.dataset.digit = d;
    list.appendChild(li);
  }
}

export function setBars(list, probabilities, top) {
  [...list.children].forEach((li, d) => {
    const p = probabilities ? probabilities[d] : 0;
    li.style.setProperty("--p", p.toFixed(4));
    li.querySelector(".value").textContent = probabilities ? `${(100 * p).toFixed(1)}%` : "–";
    li.classList.toggle("top", d === top);
  });
}

export function caveat({ input, probabilities, digit }) {
  // Why this drawing may be no digit at all, or null.
  let top = 28, bottom = -1, left = 28, right = -1, inked = 0;
  for (let i = 0; i < input.length; i++) {
    if (input[i] > 0.5) inked++;
    if (input[i] > 0.05) {
      const r = Math.floor(i / 28), c = i % 28;
      top = Math.min(top, r); bottom = Math.max(bottom, r);
      left = Math.min(left, c); right = Math.max(right, c);
    }
  }
  const span = Math.max(bottom - top + 1, right - left + 1);
  const p = probabilities[digit];
  const rule = "The network has no “not a digit” answer: it must pick one of 0–9.";
  if (span < DIGIT_SPAN) {
    return { text: `This looks like a dot, not a digit. ${rule}`, short: "This looks like a dot; the network must still pick a digit" };
  }
  if (inked > MOST_INK) {
    return { text: `This has more ink than any MNIST digit. ${rule}`, short: "More ink than any digit; the network must still pick one" };
  }
  if (p < UNSURE) {
    return { text: `The network is unsure: this is unlike the digits it learned from, or between two of them. ${rule}`, short: "The network is unsure; it must still pick a digit" };
  }
  return null;
}

export function paintGrey(canvas, values) {
  // 784 values in [0, 1] on a 28x28 canvas, black to white.
  const g = canvas.getContext("2d");
  const image = g.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, values[i])));
    image.data.set([v, v, v, 255], 4 * i);
  }
  g.putImageData(image, 0, 0);
}
