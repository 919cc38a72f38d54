// Dead letters: DEAD jobs grouped by queue and error. Requeue one, the selected ones, or all that
// match the filter: counted first, confirmed, then requeued in batches with progress and an Abort.

import { rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { describe, jobFilter, listRequest } from "./filter.js";
import { count } from "./format.js";
import { jobTable, searchForm } from "./jobs.js";

const SAMPLE = 500; // the newest dead jobs the groups are drawn from
const BATCH = 1000; // jobs per Requeue call (the server's limit)
const COUNT_CAP = 100000;

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

// How many dead jobs match, counted page by page (bounded), before anything is changed.
async function countMatching(params, progress) {
  let token = "";
  let total = 0;
  do {
    const answer = await rpc("QueueService", "ListJobs", { filter: deadFilter(params), pageSize: 1000, pageToken: token });
    total += (answer.jobs || []).length;
    token = answer.nextPageToken || "";
    progress(`counting… ${count(total)}`);
  } while (token && total < COUNT_CAP);
  return { total, capped: Boolean(token) };
}

function bulk(params, who, done) {
  const status = el("div", { class: "bulk", "aria-live": "polite" });
  const bar = el("progress", { max: 1, value: 0 });
  let abort = false;
  const run = async () => {
    replace(status, "counting…");
    const { total, capped } = await countMatching(params, (t) => replace(status, t));
    if (!total) return replace(status, notice("No dead job matches.", "info"));
    const shown = capped ? `more than ${count(total)}` : count(total);
    if (!confirm(`Requeue ${shown} dead jobs matching ${describe(params)}?`)) return replace(status);
    bar.max = total;
    const stopButton = el("button", { type: "button", onclick: () => { abort = true; } }, "Abort");
    let moved = 0;
    while (!abort && moved < total) {
      const answer = await rpc("QueueService", "Requeue", { filter: deadFilter(params), limit: Math.min(BATCH, total - moved) });
      const n = (answer.jobs || []).length;
      if (!n) break;
      moved += n;
      bar.value = moved;
      replace(status, bar, ` requeued ${count(moved)} of ${shown} `, stopButton);
    }
    replace(status, notice(`${abort ? "Aborted: " : ""}requeued ${moved} jobs.`, "info"));
    done();
  };
  const button = actionButton(who, "Requeue all matching…", () => run().catch((e) => replace(status, notice(e.message))), { id: "requeue-all" });
  return el("div", { class: "actions" }, button, status);
}

export function render(main, { who, params }) {
  const results = el("div", { "aria-live": "polite" }, el("p", { class: "muted" }, "Loading…"));
  replace(main, el("h1", {}, "Dead letters"), searchForm(params, "#/dead"), results);
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
      el("h2", {}, "Jobs"), bulk(params, who, load), el("div", { class: "actions" }, selectedButton), message,
      jobTable(jobs, select));
  }, (err) => live && replace(results, notice(`This search cannot run: ${err.message}`)));
  load();
  return () => { live = false; };
}
