// The network's answer, shared by the page and the notebook widget: the ten outputs as
// bars, the 28x28 input it saw, and why a drawing may be no digit at all (the rule is
// the library's, recognise.doubt, sent with the answer).
"use strict";

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

export function caveat({ not_a_digit: notADigit, reason }) {
  // The server's verdict (/api/predict's not_a_digit and reason) in words, or null.
  if (!notADigit) return null;
  return {
    text: `Probably not a digit: ${reason}. The network has no “not a digit” answer: it must pick one of 0–9.`,
    short: `Probably not a digit: ${reason}`,
  };
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
