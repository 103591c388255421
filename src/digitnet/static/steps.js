// "How the network's input was made": the preprocessing steps of the current drawing,
// as /api/preprocess reports them (the same code the guess came from).
"use strict";

const PEN = {
  kept: "kept as drawn",
  thickened: "thickened to MNIST's stroke width",
  thinned: "thinned to MNIST's stroke width",
  shrunk: "not enlarged: a dot or blob wider than any MNIST stroke stays small",
};

function paint(canvas, values, width, height) {
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  const image = g.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, values[i])));
    image.data.set([v, v, v, 255], 4 * i);
  }
  g.putImageData(image, 0, 0);
}

function letterbox(canvas, source, side) {
  // Draw source (a canvas or image) centred in a black side x side canvas, keeping its
  // aspect ratio, so a tall crop is not stretched into a square.
  canvas.width = side;
  canvas.height = side;
  const g = canvas.getContext("2d");
  g.fillStyle = "#000";
  g.fillRect(0, 0, side, side);
  g.imageSmoothingEnabled = false;
  const scale = side / Math.max(source.width, source.height);
  const w = source.width * scale;
  const h = source.height * scale;
  g.drawImage(source, (side - w) / 2, (side - h) / 2, w, h);
}

function figure(parent, title, caption) {
  const fig = document.createElement("figure");
  fig.className = "step";
  const h = document.createElement("h3");
  h.textContent = title;
  const canvas = document.createElement("canvas");
  const text = document.createElement("figcaption");
  text.textContent = caption;
  fig.append(h, canvas, text);
  parent.appendChild(fig);
  return canvas;
}

export async function showSteps(container, { pad, strokes, input }) {
  // Fill container with the steps from the pad to the network's input.
  container.innerHTML = "";
  if (!strokes) {
    const canvas = figure(container, "The network's input",
      "This picture is already in MNIST's form (28 × 28, the ink fitted into 20 × 20 and centred by its mass), so the network sees it as it is.");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "The 28 by 28 input");
    paint(canvas, input, 28, 28);
    return;
  }
  const response = await fetch("/api/preprocess", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image: pad.toDataURL("image/png") }),
  });
  const s = await response.json();
  if (!response.ok) throw new Error(s.error || response.statusText);
  const [top, left, bottom, right] = s.bounds;
  const [height, width] = s.size;

  const drawing = figure(container, "1. Your drawing",
    `The ink is found (dark on light, so it is inverted) and cropped to its bounding box: ${right - left} × ${bottom - top} px.`);
  drawing.width = pad.width;
  drawing.height = pad.height;
  const g = drawing.getContext("2d");
  g.drawImage(pad, 0, 0);
  const sx = pad.width / width;
  const sy = pad.height / height;
  g.strokeStyle = "#d23c1e";
  g.lineWidth = 3;
  g.setLineDash([8, 5]);
  g.strokeRect(left * sx, top * sy, (right - left) * sx, (bottom - top) * sy);
  drawing.setAttribute("role", "img");
  drawing.setAttribute("aria-label", "Your drawing, with the box the ink was cropped to");

  const crop = figure(container, "2. The ink, cropped", "White ink on black, as in MNIST.");
  const picture = new Image();
  picture.src = s.ink;
  await picture.decode();
  letterbox(crop, picture, 224);
  crop.setAttribute("role", "img");
  crop.setAttribute("aria-label", "The ink found, cropped");

  const boxRows = s.box.length;
  const boxCols = s.box[0].length;
  const fitted = figure(container, "3. Fitted into 20 × 20",
    `The longer side scaled to ${Math.max(boxRows, boxCols)} px (${boxCols} × ${boxRows}). `
    + `Strokes ${s.stroke.toFixed(1)} px wide at this size were ${PEN[s.pen] || s.pen}.`);
  const box = document.createElement("canvas");
  paint(box, s.box.flat(), boxCols, boxRows);
  const cell = 11; // px per pixel of the 20x20 box, drawn whole so a small dot looks small
  fitted.width = 20 * cell;
  fitted.height = 20 * cell;
  const b = fitted.getContext("2d");
  b.fillStyle = "#000";
  b.fillRect(0, 0, fitted.width, fitted.height);
  b.imageSmoothingEnabled = false;
  b.drawImage(box, ((20 - boxCols) / 2) * cell, ((20 - boxRows) / 2) * cell, boxCols * cell, boxRows * cell);
  fitted.setAttribute("role", "img");
  fitted.setAttribute("aria-label", "The ink fitted into the 20 by 20 box");

  const field = figure(container, "4. Centred by its mass in 28 × 28",
    `Placed at row ${s.offset[0]}, column ${s.offset[1]}, so that the centre of mass of the ink is at pixel (14, 14), marked +. This is what the network sees.`);
  const scale = 8;
  field.width = 28 * scale;
  field.height = 28 * scale;
  const small = document.createElement("canvas");
  paint(small, s.input, 28, 28);
  const f = field.getContext("2d");
  f.imageSmoothingEnabled = false;
  f.drawImage(small, 0, 0, 28 * scale, 28 * scale);
  f.strokeStyle = "#ff7a5c";
  f.lineWidth = 2;
  f.setLineDash([6, 4]);
  f.strokeRect(s.offset[1] * scale, s.offset[0] * scale, boxCols * scale, boxRows * scale);
  f.setLineDash([]);
  f.strokeStyle = "#5aa2ff";
  const c = 14.5 * scale; // the middle of pixel (14, 14)
  f.beginPath();
  f.moveTo(c - 10, c);
  f.lineTo(c + 10, c);
  f.moveTo(c, c - 10);
  f.lineTo(c, c + 10);
  f.stroke();
  field.setAttribute("role", "img");
  field.setAttribute("aria-label", "The 28 by 28 input, with the box and the centre marked");
}
