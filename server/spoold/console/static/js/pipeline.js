// One pipeline: its state, and its steps as a tree by depends_on (each step's job linked), with
// Cancel / Pause / Resume (admin scope). Kept current by the server's pushes (WatchPipeline over
// SSE, /v1/pipelines/ID/events) until the pipeline is finished; Refresh reads it again.

import { follow, rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { shortStatus, time } from "./format.js";

const FINISHED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

// The steps in tree order: each step under its first parent (the "depends on" column names all
// of them), depth first from the steps without parents; [step, depth] pairs.
function tree(steps) {
  const names = new Set(steps.map((s) => s.name));
  const children = new Map();
  const roots = [];
  for (const s of steps) {
    const parent = (s.dependsOn || [])[0];
    if (parent && names.has(parent)) children.set(parent, [...(children.get(parent) || []), s]);
    else roots.push(s);
  }
  const out = [];
  const seen = new Set();
  const visit = (s, depth) => {
    if (seen.has(s.name)) return;
    seen.add(s.name);
    out.push([s, depth]);
    for (const c of children.get(s.name) || []) visit(c, depth + 1);
  };
  for (const s of roots) visit(s, 0);
  for (const s of steps) visit(s, 0); // a cycle would leave some out; the server refuses cycles
  return out;
}

function stepRow(step, depth) {
  const job = step.job || {};
  const state = shortStatus(job.state);
  return el("tr", { dataset: { step: step.name } },
    el("th", { scope: "row", class: `step-name depth-${Math.min(depth, 6)}` },
      depth ? el("span", { class: "muted", "aria-hidden": "true" }, "└ ") : null, step.name,
      step.onFailure ? el("span", { class: "badge" }, "on failure") : null),
    el("td", { class: "state-cell" }, el("span", { class: `state ${state.toLowerCase()}` }, state)),
    el("td", {}, job.id ? link(`#/job/${encodeURIComponent(job.id)}`, `job ${job.id}`) : "–"),
    el("td", {}, job.queue || ""),
    el("td", { class: "num" }, String(job.attempt || 0)),
    el("td", { class: "muted depends" }, (step.dependsOn || []).join(", ") || "–"));
}

function view(p, who, act) {
  const state = shortStatus(p.state);
  const steps = p.steps || [];
  return [
    el("h1", {}, "Pipeline ", el("span", { class: "pipeline-name" }, p.name), " ",
      el("span", { id: "pipeline-state", class: `state ${state.toLowerCase()}` }, state),
      p.paused ? el("span", { class: "badge paused", id: "pipeline-paused" }, "paused") : null),
    el("p", { class: "muted" }, `id ${p.id} · created `, time(p.createdAt),
      p.idempotencyKey ? ` · idempotency key ${p.idempotencyKey}` : "", ` · ${steps.length} steps · `,
      link(`#/jobs?${new URLSearchParams({ pipeline: p.id })}`, "its jobs on the Jobs page")),
    el("div", { class: "actions" },
      actionButton(who, p.paused ? "Resume" : "Pause", () => act(p.paused ? "ResumePipeline" : "PausePipeline"),
        { id: "pipeline-toggle", disabled: FINISHED.has(state) }),
      actionButton(who, "Cancel", () => act("CancelPipeline"), { id: "pipeline-cancel", disabled: FINISHED.has(state) })),
    el("div", { class: "scroll" }, el("table", { class: "steps" },
      el("thead", {}, el("tr", {}, ["step", "state", "job", "queue", "attempt", "depends on"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, tree(steps).map(([s, depth]) => stepRow(s, depth))))),
  ];
}

// A WatchPipeline answer applied to the pipeline shown: a snapshot replaces it, a change replaces
// the steps it names (and adds new ones) and the pipeline's own fields.
function merged(current, answer) {
  if (answer.snapshot || !current) return answer.pipeline;
  const changed = new Map((answer.pipeline.steps || []).map((s) => [s.name, s]));
  const steps = (current.steps || []).map((s) => {
    const now = changed.get(s.name);
    changed.delete(s.name);
    return now || s;
  });
  return { ...answer.pipeline, steps: [...steps, ...changed.values()] };
}

export function render(main, { who, id }) {
  const message = el("div", { "aria-live": "assertive" });
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  const stamp = el("span", { class: "muted", id: "pipeline-updated" });
  const request = { pipelineId: id };
  let current = null;
  const show = (pipeline) => {
    current = pipeline;
    replace(body, view(pipeline, who, act));
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  // Pushed by the server (WatchPipeline over SSE): every step first, then each change, until the
  // pipeline is finished; the stream closes then.
  let stop = null;
  const watch = () => {
    if (stop) stop();
    stop = follow(`/v1/pipelines/${encodeURIComponent(id)}/events`, {
      onMessage: (answer) => show(merged(current, answer)),
      onEnd: () => { stamp.textContent = `finished · updated ${new Date().toLocaleTimeString()}`; },
      onError: (err) => { if (!current) replace(body, notice(err.message)); else replace(message, notice(err.message)); },
    });
  };
  const refresh = () => rpc("PipelineService", "GetPipeline", request)
    .then((answer) => { show(answer.pipeline); if (!FINISHED.has(shortStatus(answer.pipeline.state))) watch(); },
      (err) => replace(body, notice(err.message)));
  async function act(method) {
    if (method === "CancelPipeline" && !confirm(`Cancel every unfinished step of pipeline ${id}?`)) return;
    try {
      show((await rpc("PipelineService", method, request)).pipeline);
      const done = { CancelPipeline: "Cancelled", PausePipeline: "Paused", ResumePipeline: "Resumed" }[method];
      replace(message, notice(`${done}.`, "info"));
    } catch (err) {
      replace(message, notice(err.message));
    }
  }
  replace(main, message, body,
    el("p", {}, el("button", { type: "button", class: "small", id: "refresh", onclick: refresh }, "Refresh"), " ", stamp));
  watch();
  return () => { if (stop) stop(); };
}
