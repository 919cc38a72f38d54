// Pipelines: every pipeline the key may read, newest first (ListPipelines), each linked to its
// Pipeline page; filtered by state, name prefix and paused, the search kept in the URL
// (#/pipelines?state=failed&name=export-), keyset pages.

import { rpc } from "./api.js";
import { el, link, notice, replace } from "./dom.js";
import { ago, shortStatus, time } from "./format.js";

const STATES = ["running", "succeeded", "failed", "cancelled"];

function request(params) {
  const out = { pageSize: 50 };
  const states = params.getAll("state").flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  if (states.length) out.states = states.map((s) => `STATE_${s.toUpperCase()}`);
  if (params.get("name")) out.namePrefix = params.get("name");
  if (params.get("paused") === "true" || params.get("paused") === "false") out.paused = params.get("paused") === "true";
  if (params.get("page")) out.pageToken = params.get("page");
  return out;
}

function form(params) {
  const select = (name, options, label) => el("div", { class: "field" },
    el("label", { for: `f-${name}` }, label),
    el("select", { id: `f-${name}`, name }, el("option", { value: "" }, "any"),
      options.map(([value, text]) => el("option", { value, selected: params.get(name) === value }, text))));
  const search = el("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(search)) if (String(value).trim()) next.append(name, String(value).trim());
    location.hash = `#/pipelines?${next}`;
  } },
  select("state", STATES.map((s) => [s, s]), "State"),
  el("div", { class: "field" }, el("label", { for: "f-name" }, "Name starts with"),
    el("input", { id: "f-name", name: "name", value: params.get("name") || "", placeholder: "export" })),
  select("paused", [["true", "paused"], ["false", "not paused"]], "Paused"),
  el("div", { class: "field buttons" }, el("button", { type: "submit" }, "Search"), el("a", { href: "#/pipelines" }, "Clear")));
  return search;
}

function row(p) {
  const state = shortStatus(p.state);
  return el("tr", { dataset: { pipeline: p.id } },
    el("td", { class: "num" }, link(`#/pipeline/${encodeURIComponent(p.id)}`, p.id)),
    el("td", { class: "pipeline-name" }, link(`#/pipeline/${encodeURIComponent(p.id)}`, p.name)),
    el("td", { class: "state-cell" }, el("span", { class: `state ${state.toLowerCase()}` }, state),
      p.paused ? el("span", { class: "badge paused" }, "paused") : null),
    el("td", { class: "num" }, `${p.succeededSteps || 0}/${p.stepCount || 0}`),
    el("td", {}, time(p.createdAt), el("span", { class: "muted small" }, ` ${ago(p.createdAt)}`)));
}

export function render(main, { params }) {
  const results = el("div", { "aria-live": "polite" }, el("p", { class: "muted" }, "Loading…"));
  replace(main, el("h1", {}, "Pipelines"), form(params), results);
  let live = true;
  rpc("PipelineService", "ListPipelines", request(params)).then((answer) => {
    if (!live) return;
    const found = answer.pipelines || [];
    const next = new URLSearchParams(params);
    next.set("page", answer.nextPageToken || "");
    const pager = el("nav", { class: "pager", "aria-label": "Pages" },
      params.get("page") ? el("button", { type: "button", class: "link", onclick: () => history.back() }, "← Previous") : null,
      answer.nextPageToken ? link(`#/pipelines?${next}`, "Next →") : null);
    const table = el("div", { class: "scroll" }, el("table", { class: "pipelines" },
      el("thead", {}, el("tr", {}, ["id", "name", "state", "steps succeeded", "created"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, found.map(row))));
    replace(results, el("p", { class: "muted", id: "pipelines-count" }, `${found.length} pipelines${answer.nextPageToken ? " on this page" : ""}`),
      found.length ? table : notice("No pipeline matches.", "info"), pager);
  }, (err) => {
    if (live) replace(results, notice(`This search cannot run: ${err.message}`));
  });
  return () => { live = false; };
}
