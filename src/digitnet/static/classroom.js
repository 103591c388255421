// The "Join" dialog: where others open this page (GET /api/class: the addresses and a
// QR code of the first), and the address "Copy link" uses when the page was opened
// as localhost on a machine that serves it to the network.
"use strict";

import { setJoinAddress } from "./share.js";

const $ = (id) => document.getElementById(id);

async function classInfo() {
  const response = await fetch("/api/class");
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function show(info) {
  $("join-note").textContent = info.network
    ? "On the same network, type one of these addresses or scan the code:"
    : "This server listens on this machine only; start it with `digitnet serve --class` "
      + "to let others on the network open it.";
  const list = $("join-addresses");
  list.innerHTML = "";
  for (const url of info.addresses) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = link.textContent = url;
    item.appendChild(link);
    list.appendChild(item);
  }
  $("join-qr").innerHTML = info.qr;  // an SVG the server made from the first address
  const svg = $("join-qr").querySelector("svg");
  if (svg) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `QR code of ${info.addresses[0]}`);
  }
}

const ready = classInfo().then((info) => {
  if (info.network) setJoinAddress(info.addresses[0]);
  show(info);
  return info;
});

$("join-open").addEventListener("click", async () => {
  try {
    await ready;
  } catch (err) {
    $("join-note").textContent = `Cannot read the addresses: ${err.message}`;
  }
  $("join").showModal();
});
$("join-close").addEventListener("click", () => $("join").close());
