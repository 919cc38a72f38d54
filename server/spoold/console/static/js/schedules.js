// Schedules: every schedule's timetable (cron or interval, in its zone), queue, pause state, next
// fire times and last fire (its job linked), with Pause / Resume / Trigger (admin scope).

import { everyPage, rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { duration, protoSeconds, shortStatus, time } from "./format.js";

function timing(s) {
  const when = s.cron ? s.cron : `every ${duration(protoSeconds(s.interval))}`;
  return [el("code", {}, when), el("span", { class: "muted" }, ` ${s.timeZone || "UTC"}`)];
}

function lastFire(f) {
  if (!f) return el("span", { class: "muted" }, "never");
  const outcome = shortStatus(f.outcome).replace("OUTCOME_", "").toLowerCase();
  const state = f.jobState ? shortStatus(f.jobState) : "";
  return el("div", { class: "last-fire" },
    time(f.fireTime), f.triggered ? el("span", { class: "badge" }, "triggered") : null, " ",
    f.jobId ? link(`#/job/${encodeURIComponent(f.jobId)}`, `job ${f.jobId}`) : el("span", { class: `state ${outcome}` }, outcome),
    state ? [" ", el("span", { class: `state ${state.toLowerCase()}` }, state)] : null,
    f.error ? el("div", { class: "error-text small" }, f.error) : null);
}

function row(s, who, act) {
  const queue = (s.template || {}).queue || "";
  const next = (s.nextFireTimes || []).slice(0, 3);
  return el("tr", { dataset: { schedule: s.name } },
    el("th", { scope: "row", class: "schedule-name" }, s.name,
      s.paused ? el("span", { class: "badge paused" }, "paused") : null),
    el("td", {}, timing(s)),
    el("td", {}, queue ? link(`#/jobs?${new URLSearchParams({ queue })}`, queue) : "–"),
    el("td", { class: "next" }, next.length ? el("ul", { class: "plain" }, next.map((t) => el("li", {}, time(t)))) : "–"),
    el("td", { class: "last" }, lastFire(s.lastFire)),
    el("td", { class: "buttons" },
      actionButton(who, s.paused ? "Resume" : "Pause", () => act(s.paused ? "ResumeSchedule" : "PauseSchedule", s.name),
        { class: "small toggle" }), " ",
      actionButton(who, "Trigger", () => act("TriggerSchedule", s.name), { class: "small trigger" })));
}

// Every page of ListSchedules (ordered by name).
const everySchedule = () => everyPage("AdminService", "ListSchedules", "schedules", { pageSize: 1000 });

export function render(main, { who }) {
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  const message = el("div", { "aria-live": "assertive" });
  const stamp = el("span", { class: "muted", "aria-live": "off" });
  const refresh = () => everySchedule().then((list) => {
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (!list.length) return replace(body, notice("No schedules yet: create one with `spool schedule create`.", "info"));
    const head = ["schedule", "timing", "queue", "next fires", "last fire", ""];
    replace(body, el("div", { class: "scroll" }, el("table", { class: "schedules" },
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map((s) => row(s, who, act))))));
  }, (err) => replace(body, notice(err.message)));
  async function act(method, name) {
    try {
      const answer = await rpc("AdminService", method, { name });
      const what = { PauseSchedule: "Paused", ResumeSchedule: "Resumed", TriggerSchedule: "Triggered" }[method];
      const job = answer.job ? [" — ", link(`#/job/${encodeURIComponent(answer.job.id)}`, `job ${answer.job.id}`)] : null;
      replace(message, el("p", { class: "notice info", role: "status" }, `${what} ${name}.`, job));
      await refresh();
    } catch (err) {
      replace(message, notice(err.message));
    }
  }
  replace(main, el("h1", {}, "Schedules ", stamp),
    el("div", { class: "actions" }, el("button", { type: "button", class: "small", id: "refresh", onclick: refresh }, "Refresh")),
    message, body);
  refresh();
  return null;
}
