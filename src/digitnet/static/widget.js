// The page's drawing pad, guess and network diagram in a notebook cell (anywidget).
//
// What is drawn goes to the Python kernel: the pad as a PNG ({kind: "drawing"} with the
// PNG's bytes), a picture set from Python and left alone as its pixels ({kind:
// "pixels"}), an empty pad as {kind: "clear"}, each with a sequence number. The kernel
// answers by setting the widget's traits (pixels, digit, probabilities, activations),
// computed by the library functions /api/predict uses, and _drawn, the sequence number
// of the drawing they came from (0: the pixels were set from Python, so the pad shows
// them). The model's sizes, activation and weights for the diagram are in _network.
"use strict";

import { Diagram } from "./diagram.js";
import { buildBars, caveat, paintGrey, setBars } from "./guess.js";
import { listen, PENS, redraw } from "./pad.js";

const THROTTLE_MS = 120; // at most one drawing sent this often while a stroke is drawn

const TEMPLATE = `
  <section class="dw-draw">
    <canvas data-part="pad" class="dw-pad" width="280" height="280"
      aria-label="Drawing area: draw one digit here"></canvas>
    <div class="dw-buttons">
      <button data-part="clear" type="button">Clear</button>
      <button data-part="undo" type="button">Undo stroke</button>
    </div>
    <p data-part="status" class="dw-status"></p>
  </section>
  <section class="dw-answer">
    <div class="dw-guess-row">
      <div class="dw-guess-box">
        <output data-part="guess" class="dw-guess">?</output>
        <span data-part="confidence" class="dw-confidence">nothing drawn</span>
      </div>
      <figure class="dw-seen">
        <canvas data-part="seen" width="28" height="28" role="img"
          aria-label="The 28 by 28 input the network sees"></canvas>
        <figcaption>what the network sees</figcaption>
      </figure>
    </div>
    <ol data-part="bars" class="dw-bars" start="0" aria-label="The ten outputs"></ol>
    <p data-part="caveat" class="dw-caveat" hidden></p>
  </section>
  <section class="dw-network">
    <svg data-part="diagram" class="diagram" role="group" aria-label="The network's neurons"></svg>
  </section>`;

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "digitnet-widget";
  root.innerHTML = TEMPLATE;
  el.appendChild(root);
  const part = (name) => root.querySelector(`[data-part="${name}"]`);
  const pad = part("pad");
  const drawing = { base: null, strokes: [], current: null };
  let sent = 0;        // sequence number of the newest message sent
  let lastSent = 0;
  let timer = null;
  let pinned = null;   // {layer, index} chosen by click or Enter
  let preview = null;  // under the mouse or the keyboard focus

  function send() {
    // What is on the pad, to the kernel.
    const seq = ++sent;
    const generation = model.get("_generation"); // the pictures set from Python drawn on
    lastSent = performance.now();
    if (drawing.strokes.length) {
      const png = atob(pad.toDataURL("image/png").split(",")[1]);
      const bytes = Uint8Array.from(png, (c) => c.charCodeAt(0));
      model.send({ kind: "drawing", seq, generation }, undefined, [bytes.buffer]);
    } else if (drawing.base) {
      model.send({ kind: "pixels", seq, generation, pixels: drawing.base.pixels });
    } else {
      model.send({ kind: "clear", seq, generation });
    }
  }

  function schedule(final) {
    clearTimeout(timer);
    const wait = final ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - lastSent));
    timer = setTimeout(send, wait);
  }

  listen(pad, drawing, {
    ready: () => true,
    width: () => PENS.normal,
    begun() { redraw(pad, drawing); schedule(false); },
    moved() { redraw(pad, drawing); schedule(false); },
    ended() { schedule(true); },
  });
  part("clear").addEventListener("click", () => {
    drawing.strokes = [];
    drawing.base = null;
    redraw(pad, drawing);
    schedule(true);
  });
  part("undo").addEventListener("click", () => {
    if (!drawing.strokes.length) return;
    drawing.strokes.pop();
    redraw(pad, drawing);
    schedule(true);
  });

  const diagram = new Diagram(part("diagram"), {
    onPreview(neuron) { preview = neuron; show(); },
    onPin(neuron) {
      const same = pinned && pinned.layer === neuron.layer && pinned.index === neuron.index;
      pinned = same ? null : neuron;
      show();
    },
  });
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && pinned) { pinned = null; show(); }
  });
  buildBars(part("bars"));

  function pixelsChanged() {
    // Pixels set from Python replace the drawing on the pad.
    if (model.get("_drawn") !== 0) return;
    const pixels = model.get("pixels");
    drawing.strokes = [];
    drawing.current = null;
    drawing.base = pixels.some((v) => v > 0) ? { pixels } : null;
    redraw(pad, drawing);
  }

  function show() {
    // Everything from the traits the kernel set.
    const input = model.get("pixels");
    const digit = model.get("digit");
    const probabilities = model.get("probabilities");
    const blank = digit === null;
    part("guess").textContent = blank ? "?" : digit;
    part("confidence").textContent = blank ? "nothing drawn"
      : `${(100 * probabilities[digit]).toFixed(1)}% sure`;
    part("bars").classList.toggle("blank", blank);
    setBars(part("bars"), probabilities, blank ? null : digit);
    const reason = model.get("doubt");
    const doubt = blank ? null : caveat({ not_a_digit: Boolean(reason), reason });
    part("caveat").hidden = !doubt;
    part("caveat").textContent = doubt ? doubt.text : "";
    const error = model.get("error");
    part("status").textContent = error || (blank
      ? "Draw a digit with your mouse, finger or pen."
      : "Keep drawing, undo the last stroke, or clear the pad.");
    part("status").classList.toggle("dw-error", Boolean(error));
    paintGrey(part("seen"), input);
    diagram.render({
      acts: model.get("activations"),
      digit: blank ? null : digit,
      pinned,
      preview,
      inputUrl: part("seen").toDataURL(),
    });
  }

  model.on("change:pixels", pixelsChanged);
  model.on("change:_drawn", pixelsChanged); // pixels set from Python may arrive before it
  model.on("change", show);
  diagram.setModel(model.get("_network"));
  const resized = new ResizeObserver(() => diagram.layout());
  resized.observe(part("diagram"));
  pixelsChanged();
  show();
  return () => {
    clearTimeout(timer);
    resized.disconnect();
    model.off("change:pixels", pixelsChanged);
    model.off("change:_drawn", pixelsChanged);
    model.off("change", show);
  };
}

export default { render };
