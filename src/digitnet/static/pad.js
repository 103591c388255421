// The drawing pad, shared by the page and the notebook widget: strokes drawn with a
// mouse, finger or pen on a canvas, over an optional 28x28 picture.
//
// A drawing is {base, strokes, current}: base is null or {pixels: 784 values in [0, 1],
// white ink on black}, shown as dark ink on the white pad; strokes are
// [{width, points: [{x, y}, ...]}, ...] in canvas pixels; current is the stroke being
// drawn, or null.
"use strict";

export const PENS = { thin: 10, normal: 20, thick: 36 }; // px on the 280 px pad; normal ≈ MNIST's stroke

export function redraw(canvas, { base, strokes }) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (base) drawPixels(canvas, base.pixels);
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const stroke of strokes) drawStroke(ctx, stroke);
}

function drawStroke(ctx, { width, points }) {
  ctx.lineWidth = width;
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0].x, points[0].y, width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(points[0].x, points[0].y);
  for (const p of points.slice(1)) ctx.lineTo(p.x, p.y);
  ctx.stroke();
}

function drawPixels(canvas, pixels) {
  // A 28x28 input (white on black) shown as dark ink on the white pad.
  const ctx = canvas.getContext("2d");
  const cell = canvas.width / 28;
  for (let i = 0; i < 784; i++) {
    if (pixels[i] <= 0) continue;
    const v = Math.round(255 * (1 - pixels[i]));
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % 28) * cell, Math.floor(i / 28) * cell, cell + 0.5, cell + 0.5);
  }
}

function padPoint(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left) * (canvas.width / rect.width),
    y: (event.clientY - rect.top) * (canvas.height / rect.height),
  };
}

export function listen(canvas, drawing, { ready, width, begun, moved, ended }) {
  // Pointer input on canvas adds strokes to drawing: begun() when a stroke starts,
  // moved() as it grows, ended() when it is finished; ready() says whether to draw at
  // all, width() how wide the new stroke is.
  canvas.addEventListener("pointerdown", (event) => {
    if (!ready()) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing.current = { width: width(), points: [padPoint(canvas, event)] };
    drawing.strokes.push(drawing.current);
    begun();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing.current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) drawing.current.points.push(padPoint(canvas, e));
    moved();
  });
  const end = (event) => {
    if (!drawing.current) return;
    event.preventDefault();
    drawing.current = null;
    ended();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("touchstart", (e) => e.preventDefault(), { passive: false });
  canvas.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });
}

export async function greyPicture(canvas) {
  // The pad as /api/predict's "grey" takes it: {width, height, data}, data the base64 of
  // the deflated (zlib) grey bytes, row by row, 0 black to 255 white.  Each byte is the
  // luma Pillow's "L" gives a pixel, so the server reads the very pixels of the PNG
  // (toDataURL) without decoding one: under half the bytes and of the server's CPU time.
  // null where the browser cannot deflate (no CompressionStream): send the PNG then.
  if (typeof CompressionStream === "undefined") return null;
  const { width, height } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const grey = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
    grey[i] = (rgba[j] * 19595 + rgba[j + 1] * 38470 + rgba[j + 2] * 7471 + 0x8000) >> 16;
  }
  const deflated = new Blob([grey]).stream().pipeThrough(new CompressionStream("deflate"));
  const bytes = new Uint8Array(await new Response(deflated).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return { width, height, data: btoa(text) };
}
