// Jobs: every ListJobs filter (derived statuses, time ranges, error text, payload containment,
// idempotency and concurrency key), keyset paging, and the search kept in the URL.

import { rpc } from "./api.js";
import { el, link, notice, replace } from "./dom.js";
import { bulkButton } from "./bulk.js";
import { STATUSES, describe, jobFilter, listRequest, paramsOf } from "./filter.js";
import { ago, shortStatus, time } from "./format.js";

function field(label, name, params, attrs = {}) {
  const id = `f-${name}`;
  return el("div", { class: "field" }, el("label", { for: id }, label),
    el("input", { id, name, value: params.get(name) || "", ...attrs }));
}

function localValue(text) {
  const when = new Date(text || "");
  if (!text || Number.isNaN(when.getTime())) return text || "";
  const local = new Date(when.getTime() - when.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

export function searchForm(params, base, extra = []) {
  const status = el("select", { id: "f-status", name: "status" }, el("option", { value: "" }, "any status"),
    STATUSES.map((s) => el("option", { value: s, selected: params.get("status") === s }, s)));
  const times = ["created_after", "created_before", "finished_after", "finished_before"].map((n) =>
    el("div", { class: "field" }, el("label", { for: `f-${n}` }, n.replace("_", " ")),
      el("input", { id: `f-${n}`, name: n, type: "datetime-local", step: 1, value: localValue(params.get(n)) })));
  const form = el("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `${base}?${paramsOf(form)}`;
  } },
  field("Queue", "queue", params, { placeholder: "emails, reports" }),
  el("div", { class: "field" }, el("label", { for: "f-status" }, "Status"), status),
  field("Error text", "error", params, { placeholder: "timeout" }),
  field("Payload contains (JSON)", "payload", params, { placeholder: '{"order_id": 5512}' }),
  field("Idempotency key", "idem", params),
  field("Concurrency key", "ckey", params),
  field("Pipeline id", "pipeline", params),
  ...times,
  el("div", { class: "field" }, el("label", { for: "f-order" }, "Order"),
    el("select", { id: "f-order", name: "order" }, el("option", { value: "" }, "newest first"),
      el("option", { value: "oldest", selected: params.get("order") === "oldest" }, "oldest first"))),
  ...extra,
  el("div", { class: "field buttons" }, el("button", { type: "submit" }, "Search"),
    el("a", { href: `${base}` }, "Clear")));
  return form;
}

export function jobRow(job, select) {
  const err = job.lastError ? `${job.lastError.type || ""}: ${job.lastError.message || ""}` : "";
  return el("tr", { dataset: { job: job.id } },
    select ? el("td", {}, select) : null,
    el("td", { class: "num" }, link(`#/job/${encodeURIComponent(job.id)}`, job.id)),
    el("td", {}, job.queue),
    el("td", {}, el("span", { class: `state ${shortStatus(job.state).toLowerCase()}` }, shortStatus(job.state))),
    el("td", { class: "num" }, `${job.attempt || 0}/${job.maxAttempts || 1}`),
    el("td", {}, time(job.createdAt), el("span", { class: "muted small" }, ` ${ago(job.createdAt)}`)),
    el("td", {}, job.finishedAt ? time(job.finishedAt) : ""),
    el("td", { class: "error-text" }, err.length > 160 ? `${err.slice(0, 160)}…` : err));
}

export function jobTable(jobs, select) {
  const head = [select ? "" : null, "id", "queue", "state", "attempt", "created", "finished", "last error"].filter((h) => h !== null);
  return el("div", { class: "scroll" }, el("table", { class: "jobs" },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, jobs.map((j) => jobRow(j, select && select(j))))));
}

export function render(main, { who, params }) {
  const results = el("div", { "aria-live": "polite" }, el("p", { class: "muted" }, "Searching…"));
  replace(main, el("h1", {}, "Jobs"), searchForm(params, "#/jobs"), results);
  let live = true;
  rpc("QueueService", "ListJobs", listRequest(params)).then((answer) => {
    if (!live) return;
    const jobs = answer.jobs || [];
    const pager = el("nav", { class: "pager", "aria-label": "Pages" },
      params.get("page") ? el("button", { type: "button", class: "link", onclick: () => history.back() }, "← Previous") : null,
      answer.nextPageToken ? link(`#/jobs?${withPage(params, answer.nextPageToken)}`, "Next →") : null);
    const filter = jobFilter(params);
    const bulk = Object.keys(filter).length && jobs.length
      ? [bulkButton(who, "ACTION_REQUEUE", filter, params, () => null), bulkButton(who, "ACTION_CANCEL", filter, params, () => null)]
      : null;
    replace(results, el("p", { class: "muted" }, `${jobs.length} jobs${answer.nextPageToken ? " on this page" : ""} · ${describe(params)}`), bulk,
      jobs.length ? jobTable(jobs) : notice("No job matches.", "info"), pager);
  }, (err) => {
    if (live) replace(results, notice(`This search cannot run: ${err.message}`));
  });
  return () => { live = false; };
}

function withPage(params, token) {
  const next = new URLSearchParams(params);
  next.set("page", token);
  return next;
}
