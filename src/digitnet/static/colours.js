// Colours the page shares: weights and other signed values, as in the video.
"use strict";

export function diverging(value, scale) {
  // blue for negative, white at zero, red for positive (as in the video)
  const t = Math.max(-1, Math.min(1, value / (scale || 1)));
  const [r, g, b] = t < 0 ? [58, 134, 255] : [228, 87, 46];
  const k = Math.abs(t);
  return [255 + (r - 255) * k, 255 + (g - 255) * k, 255 + (b - 255) * k].map(Math.round);
}

export function paintWeights(canvas, W, scale = Math.max(1e-9, ...W.map(Math.abs))) {
  // One neuron's incoming weights (784,) as a 28x28 picture, full colour at |w| = scale
  // (by default its largest |w|).
  const side = Math.round(Math.sqrt(W.length));
  const square = side * side === W.length;
  canvas.width = square ? side : W.length;
  canvas.height = square ? side : 1;
  const g = canvas.getContext("2d");
  const image = g.createImageData(canvas.width, canvas.height);
  W.forEach((w, i) => image.data.set([...diverging(w, scale), 255], 4 * i));
  g.putImageData(image, 0, 0);
  return { side, square };
}
