// One job: payload, headers, result, checkpoint, and every attempt as a timeline with the
// requeues as boundaries, each with its log lines. It follows the job live (SSE from WatchJob)
// without a reload.

import { follow, getJson, postJson, rpc } from "./api.js";
import { actionButton, el, link, notice, replace } from "./dom.js";
import { decodeBase64, duration, pretty, protoSeconds, time } from "./format.js";

const TERMINAL = new Set(["SUCCEEDED", "DEAD", "CANCELLED"]);

const LONG = 1000; // characters of an error shown before "show all"
const LOGS_EVERY = 2000; // ms: a running attempt's log lines are fetched again at most this often

// An error's text; a very long one shows its start, and the rest on request.
function errorText(err, id) {
  const text = `${err.type || "Error"}: ${err.message || ""}`;
  if (text.length <= LONG) return el("p", { class: "error-text", id }, text);
  return el("div", { id },
    el("p", { class: "error-text" }, `${text.slice(0, LONG)}… (${text.length - LONG} more characters)`),
    el("details", {}, el("summary", {}, "show all"), el("pre", {}, text)));
}

function section(title, ...body) {
  return el("section", { class: "panel" }, el("h2", {}, title), ...body);
}

function code(text, id) {
  return text ? el("pre", { id, tabindex: 0 }, text) : el("p", { class: "muted" }, "none");
}

function payloadText(job, field) {
  const value = job[field];
  if (value === undefined) return "";
  const type = field === "payload" ? job.contentType : job.resultContentType;
  const json = !type || /json/i.test(type);
  return json ? pretty(value) : decodeBase64(value);
}

function facts(job) {
  const rows = [
    ["queue", link(`#/jobs?${new URLSearchParams({ queue: job.queue })}`, job.queue)],
    job.pipelineId ? ["pipeline", link(`#/pipeline/${encodeURIComponent(job.pipelineId)}`,
      `step ${job.stepName} of pipeline ${job.pipelineId}`)] : null,
    ["attempt", `${job.attempt || 0} of ${job.maxAttempts || 1}`],
    ["requeues", String(job.requeues || 0)],
    ["priority", String(job.priority || 0)],
    ["run at", time(job.runAt)],
    ["created", time(job.createdAt)],
    ["updated", time(job.updatedAt)],
    ["finished", job.finishedAt ? time(job.finishedAt) : "–"],
    ["worker", job.workerId || "–"],
    ["lease until", job.leaseExpiresAt ? time(job.leaseExpiresAt) : "–"],
    ["idempotency key", job.idempotencyKey || "–"],
    ["concurrency key", job.concurrencyKey ? `${job.concurrencyKey} (limit ${job.concurrencyLimit || 1})` : "–"],
    ["content type", job.contentType || "application/json"],
  ];
  return el("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function headers(job) {
  const entries = Object.entries(job.headers || {});
  if (!entries.length) return el("p", { class: "muted" }, "none");
  return el("dl", { class: "facts", id: "job-headers" }, entries.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// An attempt's log lines as the worker sent them (GetJob with include_logs), collapsed until opened;
// text only. Where lines were dropped to keep the bound, the text begins with the marker line.
function attemptLogs(a, logs) {
  const got = logs.byToken.get(a.leaseToken);
  if (!got || !got.logs) return null;
  const lines = got.logs.replace(/\n$/, "").split("\n").length;
  const dropped = Number(got.logsDropped || 0);
  const label = `log: ${lines} line${lines === 1 ? "" : "s"}${dropped ? ` (${dropped} earlier characters dropped)` : ""}`;
  const details = el("details", { class: "attempt-logs", open: logs.opened.has(a.leaseToken) },
    el("summary", {}, label),
    el("pre", { class: "log-text", tabindex: 0 }, got.logs));
  details.addEventListener("toggle", () => {
    if (details.open) logs.opened.add(a.leaseToken);
    else logs.opened.delete(a.leaseToken);
  });
  return details;
}

function attempt(a, logs) {
  const outcome = (a.outcome || "OUTCOME_RUNNING").replace("OUTCOME_", "");
  const err = a.error;
  return el("li", { class: `attempt ${outcome.toLowerCase()}` },
    el("div", { class: "attempt-head" },
      el("strong", {}, `#${a.number}`), " ", el("span", { class: `state ${outcome.toLowerCase()}` }, outcome),
      " · ", a.workerId || "?", " · started ", time(a.startedAt),
      a.duration ? ` · ${duration(protoSeconds(a.duration))}` : ""),
    err ? errorText(err) : null,
    err && err.details ? el("details", {}, el("summary", {}, "traceback"), el("pre", {}, err.details)) : null,
    attemptLogs(a, logs));
}

function timeline(job, logs) {
  const attempts = job.attempts || [];
  if (!attempts.length) return el("p", { class: "muted" }, "No attempt yet.");
  const total = Number(job.attemptsTotal || attempts.length);
  const items = total > attempts.length
    ? [el("li", { class: "boundary" }, `${total - attempts.length} earlier attempts not shown (the latest ${attempts.length} are)`)]
    : [];
  let round = attempts[0].requeues || 0;
  for (const a of attempts) {
    if ((a.requeues || 0) !== round) {
      round = a.requeues || 0;
      items.push(el("li", { class: "boundary" }, `requeued (${round})`));
    }
    items.push(attempt(a, logs));
  }
  return el("ol", { class: "timeline" }, items);
}

function view(job, who, act, logs) {
  const status = job.status;
  const err = job.lastError;
  return [
    el("h1", {}, "Job ", job.jobId, " ", el("span", { id: "job-status", class: `state ${status.toLowerCase()}` }, status),
      job.cancelRequested ? el("span", { class: "badge" }, "cancel requested") : null),
    el("div", { class: "actions" },
      actionButton(who, "Requeue", () => act("requeue"), { id: "requeue", disabled: !TERMINAL.has(status) || (status === "SUCCEEDED") }),
      actionButton(who, "Cancel", () => act("cancel"), { id: "cancel", disabled: TERMINAL.has(status) }),
      who.canEnqueue ? link(`#/enqueue?copy=${encodeURIComponent(job.jobId)}`, "Copy to a new job…") : null),
    err ? section("Last error", errorText(err, "job-error"),
      err.details ? el("details", {}, el("summary", {}, "traceback"), el("pre", {}, err.details)) : null) : null,
    el("div", { class: "columns" },
      section("Payload", code(payloadText(job, "payload"), "job-payload")),
      section("Details", facts(job))),
    el("div", { class: "columns" },
      section("Headers", headers(job)),
      section("Result", code(payloadText(job, "result"), "job-result")),
      section("Checkpoint", code(decodeBase64(job.checkpoint), "job-checkpoint"))),
    section("Attempts", timeline(job, logs)),
  ];
}

export function render(main, { who, id }) {
  const live = el("p", { class: "muted", id: "live", "aria-live": "polite" });
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  const message = el("div", { "aria-live": "assertive" });
  replace(main, message, body, live);
  let job = null;
  let unfollow = null;
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  // Log lines by lease token, which attempts' logs are open, and what the last fetch saw.
  const logs = { byToken: new Map(), opened: new Set(), seen: "", at: 0, timer: null };
  const fetchLogs = async () => {
    logs.at = Date.now();
    try {
      const answer = await rpc("QueueService", "GetJob", { jobId: id, includeLogs: true });
      for (const a of (answer.job && answer.job.attempts) || []) {
        logs.byToken.set(a.leaseToken, { logs: a.logs || "", logsDropped: a.logsDropped || 0 });
      }
      if (job) replace(body, view(job, who, act, logs));
    } catch {
      // the page stands without the log lines; the next change of the job tries again
    }
  };
  // Fetched again when an attempt starts or ends, and while one runs (its heartbeats bring lines).
  const refreshLogs = (j) => {
    const attempts = (j.attempts || []).map((a) => `${a.leaseToken}:${a.outcome || ""}`).join(",");
    const seen = `${j.status} ${attempts} ${j.status === "RUNNING" ? j.updatedAt : ""}`;
    if (seen === logs.seen) return;
    logs.seen = seen;
    clearTimeout(logs.timer);
    logs.timer = setTimeout(fetchLogs, Math.max(0, logs.at + LOGS_EVERY - Date.now()));
  };
  const show = (j) => {
    job = j;
    replace(body, view(j, who, act, logs));
    refreshLogs(j);
  };
  const watch = () => {
    if (unfollow) unfollow();
    live.textContent = "following live…";
    unfollow = follow(`${path}/events`, {
      onMessage: show,
      onEnd: () => { live.textContent = `finished: ${job ? job.status : ""}`; },
      onError: (err) => { live.textContent = `live updates stopped: ${err.message}`; },
    });
  };
  async function act(what) {
    if (what === "cancel" && !confirm(`Cancel job ${id}?`)) return;
    try {
      show(await postJson(`${path}:${what}`, {}));
      replace(message, notice(what === "requeue" ? "Requeued: the job is PENDING again." : "Cancel sent.", "info"));
      if (!TERMINAL.has(job.status)) watch();
    } catch (err) {
      replace(message, notice(err.message));
    }
  }
  getJson(path).then((j) => {
    show(j);
    if (!TERMINAL.has(j.status)) watch();
    else live.textContent = "";
  }, (err) => replace(body, notice(err.message)));
  return () => {
    clearTimeout(logs.timer);
    if (unfollow) unfollow();
  };
}
