// Queues: counts by derived status, lag, throughput, pause state and defaults; the stats arrive
// pushed from the server (one query per interval for every open console), not polled per browser.

import { everyPage, follow, rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { sparkline, totals } from "./chart.js";
import { count, duration, protoSeconds } from "./format.js";

const COLUMNS = ["ready", "scheduled", "retrying", "throttled", "running", "dead", "succeeded", "cancelled"];

function jobsLink(queue, status, value) {
  const params = new URLSearchParams({ queue });
  if (status) params.set("status", status);
  const text = count(value);
  return value && Number(value) > 0 ? link(`#/jobs?${params}`, text) : el("span", { class: "zero" }, text);
}

function defaults(d = {}) {
  const parts = [];
  if (d.maxAttempts) parts.push(`attempts ${d.maxAttempts}`);
  if (d.leaseDuration) parts.push(`lease ${duration(protoSeconds(d.leaseDuration))}`);
  if (d.attemptTimeout) parts.push(`timeout ${duration(protoSeconds(d.attemptTimeout))}`);
  if (d.backoff && d.backoff.kind) parts.push(d.backoff.kind.replace("KIND_", "").toLowerCase());
  return parts.length ? parts.join(" · ") : "server defaults";
}

// "rate ≤5 per 1s, burst 10": the queue's token bucket (RateLimit), if it has one.
function rateLimit(r) {
  if (!r) return "";
  return el("span", { class: "rate-limit" }, ` · rate ≤${r.limit} per ${duration(protoSeconds(r.interval || "1s"))}, burst ${r.burst || 1}`);
}

function row(q, who, refresh, activity) {
  const s = q.stats || {};
  const toggle = async () => {
    try {
      await rpc("AdminService", q.paused ? "ResumeQueue" : "PauseQueue", { name: q.name });
      refresh();
    } catch (err) {
      alert(err.message);
    }
  };
  return el("tr", { dataset: { queue: q.name } },
    el("th", { scope: "row" }, link(`#/jobs?${new URLSearchParams({ queue: q.name })}`, q.name),
      q.paused ? el("span", { class: "badge paused" }, "paused") : null),
    ...COLUMNS.map((c) => el("td", { class: `num ${c}` }, jobsLink(q.name, c, s[c]))),
    el("td", { class: "num" }, s.lag ? duration(protoSeconds(s.lag)) : "–"),
    el("td", { class: "num" }, count(s.finishedLastMinute)),
    el("td", { class: "num activity" }, totals(activity, 5)),
    el("td", { class: "activity" }, sparkline(activity), el("div", { class: "muted small" }, totals(activity, 60))),
    el("td", { class: "muted" }, defaults(q.defaults), rateLimit(q.rateLimit)),
    el("td", {}, actionButton(who, q.paused ? "Resume" : "Pause", toggle, { class: "small" })));
}

function table(list, who, refresh, activity) {
  if (!list.length) return notice("No queues yet: enqueue a job and its queue appears here.", "info");
  const head = ["queue", ...COLUMNS, "lag", "done/min", "5 min", "60 min", "defaults", ""];
  const sums = Object.fromEntries(COLUMNS.map((c) => [c, list.reduce((a, q) => a + Number((q.stats || {})[c] || 0), 0)]));
  return el("div", { class: "scroll" }, el("table", { class: "queues" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i && i <= COLUMNS.length + 2 ? "num" : "" }, h)))),
    el("tbody", {}, list.map((q) => row(q, who, refresh, activity.get(q.name)))),
    el("tfoot", {}, el("tr", {}, el("th", { scope: "row" }, `${list.length} queue${list.length === 1 ? "" : "s"}`),
      ...COLUMNS.map((c) => el("td", { class: "num" }, count(sums[c]))), el("td", { colspan: 6 })))));
}

// Every page of ListQueues (up to 1,000 queues a page).
const everyQueue = () => everyPage("AdminService", "ListQueues", "queues");

export function render(main, { who }) {
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  const stamp = el("span", { class: "muted", "aria-live": "off" });
  replace(main, el("h1", {}, "Queues ", stamp), body);
  let latest = [];
  let activity = new Map();
  const keep = (a) => {
    if (a && a.queues) activity = new Map(a.queues.map((x) => [x.queue, x]));
  };
  const show = (list) => {
    latest = list;
    replace(body, table(list, who, refresh, activity));
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  const refresh = () => Promise.all([everyQueue(), rpc("AdminService", "GetQueueActivity")])
    .then(([list, b]) => { keep(b); show(list); }, (e) => replace(body, notice(e.message)));
  refresh();
  const stopFeed = follow("/console/feed/queues", {
    onMessage: (snapshot) => { keep(snapshot.activity); show(snapshot.queues || []); },
    onError: (err) => {
      stamp.textContent = `live updates stopped: ${err.message}`;
      if (!latest.length) refresh();
    },
  });
  return stopFeed;
}
