// The teacher's view (/teacher?key=KEY): the training queue, a switch that turns
// training off (or on) for everyone, a stop for any run and a clear of the class's
// networks.  Every call carries the key from the page's own address.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = new URLSearchParams(location.search).get("key") || "";
const EVERY_MS = 2000;  // how often the queue is read again

async function call(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function post(url, body) {
  return call(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key: KEY, ...body }),
  });
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function showQueue(queue) {
  const body = $("teacher-queue").tBodies[0];
  body.innerHTML = "";
  for (const run of queue) {
    const row = document.createElement("tr");
    cell(row, run.position === 0 ? "training" : String(run.position));
    cell(row, run.name);
    cell(row, run.id);
    cell(row, String(run.epochs));
    cell(row, run.state);
    const stop = document.createElement("button");
    stop.type = "button";
    stop.textContent = "Stop";
    stop.setAttribute("aria-label", `Stop ${run.name} (${run.id})`);
    stop.addEventListener("click", () => stopRun(run.id));
    cell(row, "").appendChild(stop);
    body.appendChild(row);
  }
  if (!queue.length) cell(body.insertRow(), "Nothing training or waiting.").colSpan = 6;
}

let enabled = true;

async function refresh() {
  try {
    const view = await call(`/api/teacher?key=${encodeURIComponent(KEY)}`);
    enabled = view.enabled;
    $("teacher-addresses").textContent = view.addresses.join(" or ");
    $("teacher-switch").textContent = enabled ? "Switch training off" : "Switch training on";
    $("teacher-switch").disabled = false;
    $("teacher-switch-status").textContent = enabled
      ? "Training is on: students' runs queue and train one at a time."
      : "Training is off: students who press Train are told so.";
    showQueue(view.queue);
    const list = $("teacher-models");
    list.innerHTML = "";
    for (const m of view.models) {
      const item = document.createElement("li");
      const accuracy = m.test_accuracy == null ? "" : `, ${(100 * m.test_accuracy).toFixed(1)}%`;
      item.textContent = `${m.name} (${m.id}): ${m.sizes.join("-")}${accuracy}`;
      list.appendChild(item);
    }
    if (!view.models.length) list.innerHTML = "<li>None yet.</li>";
    $("teacher-error").textContent = "";
  } catch (err) {
    $("teacher-error").textContent = err.message;
  }
}

async function act(work) {
  try {
    await work();
    await refresh();
  } catch (err) {
    $("teacher-error").textContent = err.message;
  }
}

function stopRun(id) {
  act(() => call(`/api/train/${encodeURIComponent(id)}`,
    { method: "DELETE", headers: { "X-Teacher-Key": KEY } }));
}

$("teacher-switch").addEventListener("click", () => act(() => post("/api/teacher/training", { enabled: !enabled })));
$("teacher-clear").addEventListener("click", () => act(() => post("/api/teacher/clear", {})));
refresh().then(() => { document.body.dataset.ready = "true"; });
setInterval(refresh, EVERY_MS);
