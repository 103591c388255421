// "Teach it your handwriting": label what you drew, collect it, score the network on
// it, fine-tune a network on MNIST plus your digits, download them as MNIST files.
//
// The collection is a list of {p, d}: p the 28x28 input the network saw (the server's
// preprocessing of the drawing, /api/predict's `input`) as base64 of 784 bytes, white
// ink on black, row by row; d the digit it is.  It lives in this browser's
// localStorage and goes to the server only as a training request's `add` (which the
// server keeps for that run alone) or one digit at a time to /api/predict.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "digitnet-my-digits";
const MAX_DIGITS = 5000;       // the server's bound on a training request's `add`
const FINE_TUNE = { epochs: 10, add_weight: 20 };  // each of your digits 20 times an epoch
const AT_ONCE = 6;             // predictions in flight at a time

// ---- the collection, as bytes ---------------------------------------------------------

function toBase64(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function toBytes(input) {
  // 784 values in [0, 1] -> 784 bytes 0-255
  return Uint8Array.from(input, (v) => Math.round(255 * Math.min(1, Math.max(0, v))));
}

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((x) => x && typeof x.p === "string" && x.d >= 0 && x.d <= 9) : [];
  } catch {
    return [];
  }
}

// ---- MNIST files in a zip, made here --------------------------------------------------

function idx(count, dims, body) {
  // An IDX file of unsigned bytes: 0, 0, 0x08, the number of dimensions, each size as a
  // big-endian uint32, then the bytes.
  const head = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  head.setUint8(2, 0x08);
  head.setUint8(3, dims.length);
  dims.forEach((n, i) => head.setUint32(4 + 4 * i, n));
  const out = new Uint8Array(head.byteLength + body.length);
  out.set(new Uint8Array(head.buffer));
  out.set(body, head.byteLength);
  return out;
}

async function gzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function zip(files) {
  // A zip of [{name, bytes}], stored (no compression: the files are gzip'd already):
  // a local header before each file, a central directory, and its end record.
  const parts = [], central = [];
  let offset = 0;
  for (const { name, bytes } of files) {
    const title = new TextEncoder().encode(name);
    const crc = crc32(bytes);
    const header = (size, extra) => {
      const v = new DataView(new ArrayBuffer(size));
      v.setUint16(extra + 4, 20, true);                        // version needed
      v.setUint32(extra + 14, crc, true);
      v.setUint32(extra + 18, bytes.length, true);             // compressed size
      v.setUint32(extra + 22, bytes.length, true);             // size
      v.setUint16(extra + 26, title.length, true);
      return v;
    };
    const local = header(30 + title.length, 0);
    local.setUint32(0, 0x04034b50, true);
    new Uint8Array(local.buffer).set(title, 30);
    const entry = header(46 + title.length, 2);
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true);                              // made by
    entry.setUint32(42, offset, true);
    new Uint8Array(entry.buffer).set(title, 46);
    parts.push(new Uint8Array(local.buffer), bytes);
    central.push(new Uint8Array(entry.buffer));
    offset += local.byteLength + bytes.length;
  }
  const size = central.reduce((n, c) => n + c.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, new Uint8Array(end.buffer)], { type: "application/zip" });
}

// ---- the panel ------------------------------------------------------------------------

export function setupTeach({ model, training, announce }) {
  // model(): the page's network id (null: the served one); training.launch(request):
  // a run through the Train panel, resolving to its "done" event's data.
  const teach = { digits: load(), input: null };

  function save() {
    try {
      localStorage.setItem(KEY, JSON.stringify(teach.digits));
    } catch (err) {
      say(`Could not keep your digits in this browser: ${err.message}`, true);
    }
  }

  function say(text, isError = false) {
    $("teach-status").textContent = text;
    $("teach-status").classList.toggle("error", isError);
  }

  function showCounts() {
    const counts = Array(10).fill(0);
    for (const { d } of teach.digits) counts[d] += 1;
    counts.forEach((n, d) => { $(`teach-count-${d}`).textContent = n; });
    $("teach-total").textContent = teach.digits.length;
    const none = teach.digits.length === 0;
    for (const id of ["teach-score", "teach-download", "teach-forget"]) $(id).disabled = none;
    $("teach-tune").disabled = teach.digits.length < 5;
  }

  function label(d) {
    if (!teach.input) return;
    if (teach.digits.length >= MAX_DIGITS) {
      say(`Your collection is full (${MAX_DIGITS} digits): download it, then forget some.`, true);
      return;
    }
    teach.digits.push({ p: toBase64(toBytes(teach.input)), d });
    teach.input = null;
    save();
    showCounts();
    setLabelling(false);
    say(`Kept as a ${d}: ${teach.digits.length} digits in your collection. Clear the pad and draw another.`);
    announce(`Kept as a ${d}.`);
  }

  function setLabelling(on) {
    for (const b of document.querySelectorAll("#teach-digits button")) b.disabled = !on;
  }

  async function guess(id, item) {
    const pixels = Array.from(fromBase64(item.p), (b) => b / 255);
    const response = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(id ? { pixels, model: id } : { pixels }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer.digit;
  }

  async function score(id, items) {
    // {right, n, confused: [[true, guessed, times], ...] most often first}
    const guesses = new Array(items.length);
    for (let s = 0; s < items.length; s += AT_ONCE) {
      const batch = items.slice(s, s + AT_ONCE);
      (await Promise.all(batch.map((item) => guess(id, item)))).forEach((g, i) => { guesses[s + i] = g; });
    }
    const pairs = new Map();
    let right = 0;
    items.forEach((item, i) => {
      if (guesses[i] === item.d) right += 1;
      else pairs.set(`${item.d}>${guesses[i]}`, (pairs.get(`${item.d}>${guesses[i]}`) || 0) + 1);
    });
    const confused = [...pairs].map(([k, n]) => [...k.split(">").map(Number), n]).sort((a, b) => b[2] - a[2]);
    return { right, n: items.length, confused };
  }

  const percent = (r) => `${(100 * r.right / r.n).toFixed(1)}% (${r.right} of ${r.n})`;

  $("teach-score").addEventListener("click", async () => {
    const id = model();
    say(`Reading your ${teach.digits.length} digits…`);
    try {
      const r = await score(id, teach.digits);
      const mixed = r.confused.slice(0, 3).map(([t, g, n]) => `${t} read as ${g} (${n}×)`).join(", ");
      const text = `The network ${id || "on the page"} reads ${percent(r)} of your digits right`
        + (mixed ? `; it confuses ${mixed}.` : ".");
      $("teach-result").textContent = text;
      $("teach-result").dataset.accuracy = String(r.right / r.n);
      say("Scored.");
      announce(text);
    } catch (err) {
      say(`Could not score your digits: ${err.message}`, true);
    }
  });

  $("teach-tune").addEventListener("click", async () => {
    // Every fifth digit is held back: scored before and after, never trained on.
    const held = teach.digits.filter((_, i) => i % 5 === 4);
    const used = teach.digits.filter((_, i) => i % 5 !== 4);
    const before = model();
    $("teach-tune").disabled = true;
    try {
      const was = await score(before, held);
      say(`Held back ${held.length} of your digits; the page's network reads ${percent(was)}. `
        + `Training on MNIST plus your other ${used.length} (see the Train panel)…`);
      const done = await training.launch({
        epochs: FINE_TUNE.epochs,
        add: { images: used.map((x) => x.p), labels: used.map((x) => x.d) },
        add_weight: FINE_TUNE.add_weight,
      });
      const now = await score(done.model, held);
      const text = `Your held-back ${held.length} digits: ${percent(was)} before, `
        + `${percent(now)} with ${done.model} (fine-tuned on your other ${used.length}). `
        + `Use it on the page from the Train panel.`;
      $("teach-result").textContent = text;
      $("teach-result").dataset.before = String(was.right / was.n);
      $("teach-result").dataset.after = String(now.right / now.n);
      say("Fine-tuned.");
      announce(text);
    } catch (err) {
      say(`Could not fine-tune: ${err.message}`, true);
    } finally {
      showCounts();
    }
  });

  $("teach-download").addEventListener("click", async () => {
    const n = teach.digits.length;
    const images = new Uint8Array(784 * n);
    teach.digits.forEach((x, i) => images.set(fromBase64(x.p), 784 * i));
    const labels = Uint8Array.from(teach.digits, (x) => x.d);
    const blob = zip([
      { name: "images-idx3-ubyte.gz", bytes: await gzip(idx(n, [n, 28, 28], images)) },
      { name: "labels-idx1-ubyte.gz", bytes: await gzip(idx(n, [n], labels)) },
    ]);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "my-digits.zip";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    say(`Saved ${n} digits as my-digits.zip: digitnet train --add and evaluate --data read them once unzipped.`);
  });

  $("teach-forget").addEventListener("click", () => {
    teach.digits = [];
    save();
    showCounts();
    $("teach-result").textContent = "";
    say("Your collection is empty.");
  });

  for (let d = 0; d <= 9; d++) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = d;
    button.dataset.digit = d;
    button.setAttribute("aria-label", `It is a ${d}`);
    button.addEventListener("click", () => label(d));
    $("teach-digits").appendChild(button);
  }
  setLabelling(false);
  showCounts();

  return {
    drawingChanged(input) {
      // The pad settled: its 28x28 input may be labelled.
      teach.input = input;
      setLabelling(Boolean(input));
    },
  };
}
