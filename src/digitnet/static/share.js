// The page's state in its address: the 28x28 input, the pinned neuron, the model.
//
//   ?d=<input>&n=<layer>.<neuron>&k=<layer>.<neuron>,...&l=<label>&m=<model>
//
// d: the 784 input values (row by row, 0 background .. 1 ink), each as one byte
//    round(255 v); a run of zero bytes is written as 0 followed by its length
//    (1-255), which keeps a digit, mostly background, to 300-500 bytes; then
//    base64url without padding (RFC 4648 §5).
// n: the pinned neuron, both numbers counted from 1 as the page shows them.
// k: the knocked-out neurons, written as n is, separated by commas.
// l: the digit the learner said the drawing is ("How it learns"), 0-9.
// m: 8 hex digits, FNV-1a of the /api/model answer, to tell a link made with
//    another network.
//
// A link copied on a machine that serves the page to its network (``digitnet serve
// --class``), where the page was opened as localhost, uses an address others can
// open instead (``setJoinAddress``, from GET /api/class).
"use strict";

let joinAddress = null;  // "http://192.168.1.5:8000/" when the server is on the network

export function setJoinAddress(url) {
  joinAddress = url;
}

export function isLoopback(hostname) {
  return hostname === "localhost" || hostname === "[::1]" || /^127\./.test(hostname);
}

export function shareable(href) {
  // href, with the class's address in place of a loopback one: a link others can open.
  const url = new URL(href);
  if (!joinAddress || !isLoopback(url.hostname)) return url.href;
  const base = new URL(joinAddress);
  url.protocol = base.protocol;
  url.host = base.host;
  return url.href;
}

export function encodeInput(values) {
  const bytes = [];
  let zeros = 0;
  const flush = () => {
    while (zeros > 0) {
      const run = Math.min(255, zeros);
      bytes.push(0, run);
      zeros -= run;
    }
  };
  for (const v of values) {
    const q = Math.round(255 * Math.min(1, Math.max(0, v)));
    if (q === 0) {
      zeros++;
    } else {
      flush();
      bytes.push(q);
    }
  }
  flush();
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeInput(text, length = 784) {
  // -> an array of `length` values in [0, 1], or null when text is not such an input.
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return null;
  let raw;
  try {
    raw = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return null;
  }
  const values = [];
  for (let i = 0; i < raw.length; i++) {
    const b = raw.charCodeAt(i);
    if (b !== 0) {
      values.push(b / 255);
      continue;
    }
    const run = raw.charCodeAt(++i);
    if (!(run > 0)) return null;
    for (let k = 0; k < run; k++) values.push(0);
  }
  return values.length === length ? values : null;
}

export function modelId(text) {
  // FNV-1a (32 bit) of the model's JSON text, as 8 hex digits.
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

export function readAddress(search) {
  // -> {input, neuron: {layer, index} | null, knockout: [[layer, index], ...],
  //     label: 0-9 | null, model}
  // from a query string (indices from 0).
  const params = new URLSearchParams(search);
  const d = params.get("d");
  const input = d ? decodeInput(d) : null;
  const n = /^(\d+)\.(\d+)$/.exec(params.get("n") || "");
  const knockout = [];
  for (const part of (params.get("k") || "").split(",")) {
    const k = /^(\d+)\.(\d+)$/.exec(part);
    if (k && Number(k[2]) >= 1) knockout.push([Number(k[1]), Number(k[2]) - 1]);
  }
  return {
    input,
    badInput: Boolean(d) && !input,
    neuron: n ? { layer: Number(n[1]), index: Number(n[2]) - 1 } : null,
    knockout,
    label: /^[0-9]$/.test(params.get("l") || "") ? Number(params.get("l")) : null,
    model: params.get("m"),
  };
}

export function writeAddress({ input, neuron, knockout = [], label = null, model }) {
  // The query string for this state ("" when there is nothing to keep); knockout:
  // [[layer, index], ...], indices from 0; label: 0-9 or null.
  const params = new URLSearchParams();
  if (input) params.set("d", encodeInput(input));
  if (neuron) params.set("n", `${neuron.layer}.${neuron.index + 1}`);
  if (knockout.length) params.set("k", knockout.map(([l, j]) => `${l}.${j + 1}`).join(","));
  if (label !== null) params.set("l", String(label));
  if (model && (input || neuron || knockout.length)) params.set("m", model);
  const text = params.toString();
  return text ? `?${text}` : "";
}
