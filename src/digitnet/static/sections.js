// The section bar: every part of the page one press away from the first screen.  A
// link scrolls its section into view, puts the keyboard focus on the section's heading
// (so Tab goes on from there) and says where the reader is now.
"use strict";

const $ = (id) => document.getElementById(id);

export function goTo(id, announce) {
  // Scroll section `id` into view and focus its heading; announce(text) tells screen
  // readers.
  const section = $(id);
  if (!section) return;
  const heading = section.querySelector("h2");
  if (id === "draw") window.scrollTo(0, 0);  // the first screen, header and all
  else section.scrollIntoView({ block: "start" });
  if (heading) {
    heading.focus({ preventScroll: true });
    announce(`${heading.textContent.trim()}.`);
  }
}

export function showExplorer(announce) {
  // The pinned neuron in the explorer: in view, its heading focused.
  $("explore-neuron").scrollIntoView({ block: "start" });
  $("explore-title").focus({ preventScroll: true });
  announce(`${$("explore-title").textContent}: what it does, below the diagram.`);
}

export function setupSections(announce) {
  $("explore-this").addEventListener("click", (event) => {
    event.preventDefault();
    showExplorer(announce);
  });
  for (const link of document.querySelectorAll("nav.sections a[data-section]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      goTo(link.dataset.section, announce);
    });
  }
}
