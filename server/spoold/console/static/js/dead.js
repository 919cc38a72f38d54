// Dead letters: DEAD jobs grouped by queue and error. Requeue one, the selected ones, or all that
// match the filter: a bulk operation (bulk.js), counted first, run by the server with progress.

import { rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { bulkButton } from "./bulk.js";
import { describe, jobFilter, listRequest } from "./filter.js";
import { count } from "./format.js";
import { jobTable, searchForm } from "./jobs.js";

const SAMPLE = 500; // the newest dead jobs the groups are drawn from

function deadFilter(params) {
  return { ...jobFilter(params), statuses: ["STATUS_DEAD"] };
}

function groups(jobs) {
  const found = new Map();
  for (const job of jobs) {
    const err = job.lastError || {};
    const key = `${job.queue}\u0000${err.type || ""}\u0000${err.message || ""}`;
    const g = found.get(key) || { queue: job.queue, type: err.type || "", message: err.message || "", jobs: 0 };
    g.jobs += 1;
    found.set(key, g);
  }
  return [...found.values()].sort((a, b) => b.jobs - a.jobs);
}

function groupTable(list) {
  return el("div", { class: "scroll" }, el("table", { class: "groups" },
    el("thead", {}, el("tr", {}, ["queue", "error", "jobs", ""].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, list.map((g) => {
      const params = new URLSearchParams({ queue: g.queue, error: g.message.slice(0, 200) || g.type });
      return el("tr", {}, el("td", {}, g.queue), el("td", { class: "error-text" }, `${g.type}: ${g.message.slice(0, 200)}`),
        el("td", { class: "num" }, count(g.jobs)), el("td", {}, link(`#/dead?${params}`, "only these")));
    }))));
}

export function render(main, { who, params }) {
  const results = el("div", { "aria-live": "polite" }, el("p", { class: "muted" }, "Loading…"));
  const bulk = el("div");
  replace(main, el("h1", {}, "Dead letters"), searchForm(params, "#/dead"), bulk, results);
  let live = true;
  const load = () => rpc("QueueService", "ListJobs", { ...listRequest(params, SAMPLE), filter: deadFilter(params) }).then((answer) => {
    if (!live) return;
    const jobs = answer.jobs || [];
    if (!jobs.length) return replace(results, notice("No dead jobs match.", "info"));
    const chosen = new Set();
    const select = (job) => el("input", { type: "checkbox", "aria-label": `select job ${job.id}`,
      onchange: (e) => { if (e.target.checked) chosen.add(job.id); else chosen.delete(job.id); } });
    const selectedButton = actionButton(who, "Requeue selected", async () => {
      if (!chosen.size || !confirm(`Requeue ${chosen.size} selected jobs?`)) return;
      try {
        const answer = await rpc("QueueService", "Requeue", { jobIds: [...chosen] });
        replace(message, notice(`Requeued ${(answer.jobs || []).length} jobs.`, "info"));
        load();
      } catch (e) {
        replace(message, notice(e.message));
      }
    }, { id: "requeue-selected" });
    const message = el("div", { "aria-live": "polite" });
    replace(results,
      el("h2", {}, "By queue and error"),
      el("p", { class: "muted" }, `Grouped over the newest ${count(jobs.length)} dead jobs${answer.nextPageToken ? " (there are more)" : ""} · ${describe(params)}`),
      groupTable(groups(jobs)),
      el("h2", {}, "Jobs"), el("div", { class: "actions" }, selectedButton), message,
      jobTable(jobs, select));
  }, (err) => live && replace(results, notice(`This search cannot run: ${err.message}`)));
  replace(bulk, bulkButton(who, "ACTION_REQUEUE", deadFilter(params), params, () => live && load()));
  load();
  return () => { live = false; };
}
