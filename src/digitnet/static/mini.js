// The network at a glance, for a phone, where the full diagram is below the pad: a
// small picture in the guess's panel, kept in view while a finger draws.  The input
// the network sees on the left, then every layer as a column of dots, each as bright
// as its activation (as in the diagram), the guess ringed in the accent colour.
"use strict";

import { shade } from "./diagram.js";

const ACCENT = "#f5c542";
const EDGE = "#8b95a7";

export function paintMini(canvas, model, acts, digit, seen) {
  // canvas: the picture, drawn at its own size in device pixels; model: /api/model;
  // acts: every layer's activations (or null); seen: the 28x28 input canvas.
  const scale = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const g = canvas.getContext("2d");
  g.setTransform(scale, 0, 0, scale, 0, 0);
  g.clearRect(0, 0, width, height);
  const side = height - 4;
  g.imageSmoothingEnabled = false;
  g.drawImage(seen, 2, 2, side, side);
  g.strokeStyle = EDGE;
  g.lineWidth = 1;
  g.strokeRect(1.5, 1.5, side + 1, side + 1);
  const layers = model.sizes.length - 1;
  const left = side + 14, right = width - 6;
  const gap = layers > 1 ? (right - left) / (layers - 1) : 0;
  for (let l = 1; l <= layers; l++) {
    const n = model.sizes[l];
    const values = acts ? shade(acts[l], model.activation, l === layers) : new Array(n).fill(0);
    const step = (height - 4) / n;
    const r = Math.max(1.5, Math.min(4, step * 0.38));
    const x = layers > 1 ? left + gap * (l - 1) : right;
    for (let j = 0; j < n; j++) {
      const v = Math.round(255 * values[j]);
      g.beginPath();
      g.arc(x, 2 + step * (j + 0.5), r, 0, 2 * Math.PI);
      g.fillStyle = `rgb(${v},${v},${v})`;
      g.fill();
      const guess = l === layers && j === digit;
      g.strokeStyle = guess ? ACCENT : EDGE;
      g.lineWidth = guess ? 2 : 0.75;
      g.stroke();
    }
  }
}
