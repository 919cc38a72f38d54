// Small charts of a queue's finished jobs per minute (AdminService.GetQueueActivity): SVG bars
// made with DOM calls, so nothing from the server is ever parsed as markup.

import { count } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const sum = (values, last) => values.slice(-last).reduce((a, b) => a + Number(b || 0), 0);

// Succeeded (up) and dead (down) per minute over the window, with totals in the title.
export function sparkline(activity) {
  const ok = (activity && activity.succeeded) || [];
  const dead = (activity && activity.dead) || [];
  const minutes = Math.max(ok.length, dead.length, 60);
  const width = 120;
  const bar = width / minutes;
  const peak = Math.max(1, ...ok.map(Number), ...dead.map(Number));
  const chart = svg("svg", { width, height: 28, viewBox: `0 0 ${width} 28`, class: "spark", role: "img" });
  const label = `last 60 min: ${count(sum(ok, 60))} succeeded, ${count(sum(dead, 60))} dead`;
  chart.setAttribute("aria-label", label);
  const title = svg("title", {});
  title.textContent = label;
  chart.appendChild(title);
  chart.appendChild(svg("line", { x1: 0, y1: 18, x2: width, y2: 18, class: "axis" }));
  for (let i = 0; i < minutes; i++) {
    const up = Number(ok[i] || 0);
    const down = Number(dead[i] || 0);
    if (up) chart.appendChild(svg("rect", { x: i * bar, y: 18 - (17 * up) / peak, width: bar, height: (17 * up) / peak, class: "ok" }));
    if (down) chart.appendChild(svg("rect", { x: i * bar, y: 18, width: bar, height: Math.max(1, (10 * down) / peak), class: "bad" }));
  }
  return chart;
}

// "1.2k ok · 3 dead" over the last `minutes` minutes.
export function totals(activity, minutes) {
  const ok = (activity && activity.succeeded) || [];
  const dead = (activity && activity.dead) || [];
  return `${count(sum(ok, minutes))} ok · ${count(sum(dead, minutes))} dead`;
}
