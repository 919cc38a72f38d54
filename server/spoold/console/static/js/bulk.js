// Bulk operations as tracked work: "everything matching this filter" is counted first, confirmed,
// then run by the server in batches (AdminService.StartBulkOperation) with progress read back,
// an Abort button, and a record of who, when, which filter and how many (#/bulk).

import { rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { describe } from "./filter.js";
import { count, time } from "./format.js";

const POLL_MS = 1000;
const LABEL = { ACTION_REQUEUE: "requeue", ACTION_CANCEL: "cancel" };

function stateName(op) {
  return String(op.state || "").replace("STATE_", "").toLowerCase();
}

// Follows one operation until it ends; returns a stop function.
function watch(who, op, box, done) {
  let timer = null;
  const bar = el("progress", { max: Math.max(Number(op.expected || 0), 1), value: Number(op.done || 0) });
  const show = (o) => {
    bar.value = Number(o.done || 0);
    const abort = actionButton(who, "Abort", async () => {
      await rpc("AdminService", "AbortBulkOperation", { id: o.id }).catch(() => null);
    }, { id: "bulk-abort" });
    const running = stateName(o) === "running";
    replace(box, bar, ` ${LABEL[o.action]} ${count(o.done)} of ${count(o.expected)} · ${stateName(o)} `,
      running ? abort : null, " ", link("#/bulk", `operation ${o.id}`));
    if (!running) {
      done(o);
      return;
    }
    timer = setTimeout(poll, POLL_MS);
  };
  const poll = () => rpc("AdminService", "GetBulkOperation", { id: op.id }).then((a) => show(a.operation),
    (e) => replace(box, notice(e.message)));
  show(op);
  return () => clearTimeout(timer);
}

// A button "Requeue all matching…" (or cancel) for a filter; done() runs when the work ends.
export function bulkButton(who, action, filter, params, done) {
  const box = el("span", { class: "bulk", "aria-live": "polite" });
  const verb = action === "ACTION_REQUEUE" ? "Requeue" : "Cancel";
  const run = async () => {
    replace(box, "counting…");
    const counted = await rpc("AdminService", "CountJobs", { filter, action });
    const n = Number(counted.count || 0);
    if (!n) return replace(box, notice("No job matches.", "info"));
    const shown = counted.more ? `more than ${count(n)}` : count(n);
    if (!confirm(`${verb} ${shown} jobs matching ${describe(params)}? The server works through them in batches.`)) {
      return replace(box);
    }
    const started = await rpc("AdminService", "StartBulkOperation", { action, filter });
    watch(who, started.operation, box, done);
  };
  const button = actionButton(who, `${verb} all matching…`, () => run().catch((e) => replace(box, notice(e.message))),
    { id: `bulk-${verb.toLowerCase()}` });
  return el("div", { class: "actions" }, button, box);
}

function filterText(filter) {
  const parts = Object.entries(filter || {}).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`);
  return parts.join(" · ") || "–";
}

// #/bulk: the record of bulk operations, newest first.
export function render(main, { who }) {
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  replace(main, el("h1", {}, "Bulk operations"), body);
  let timer = null;
  const load = () => rpc("AdminService", "ListBulkOperations", { pageSize: 100 }).then((a) => {
    const ops = a.operations || [];
    if (!ops.length) return replace(body, notice("No bulk operation yet: start one from Dead letters or Jobs.", "info"));
    replace(body, el("div", { class: "scroll" }, el("table", { class: "bulk-ops" },
      el("thead", {}, el("tr", {}, ["id", "action", "state", "done", "of", "filter", "by", "started", "finished", ""]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ops.map((o) => el("tr", { dataset: { op: o.id } },
        el("td", { class: "num" }, o.id), el("td", {}, LABEL[o.action]), el("td", {}, stateName(o)),
        el("td", { class: "num" }, count(o.done)), el("td", { class: "num" }, count(o.expected)),
        el("td", { class: "filter-text" }, filterText(o.filter)), el("td", {}, o.createdBy),
        el("td", {}, time(o.createdAt)), el("td", {}, o.finishedAt ? time(o.finishedAt) : "–"),
        el("td", {}, stateName(o) === "running" ? actionButton(who, "Abort", () =>
          rpc("AdminService", "AbortBulkOperation", { id: o.id }).then(load), { class: "small" }) : null)))))));
    if (ops.some((o) => stateName(o) === "running")) timer = setTimeout(load, POLL_MS);
  }, (e) => replace(body, notice(e.message)));
  load();
  return () => clearTimeout(timer);
}
