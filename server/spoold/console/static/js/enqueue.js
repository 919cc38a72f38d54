// Enqueue a job: a JSON payload and options, or a copy of an existing job with its payload edited.
// It goes through the REST route POST /v1/queues/{queue}/jobs (the Enqueue RPC's validation).

import { getJson, postJson } from "./api.js";
import { el, link, notice, replace } from "./dom.js";
import { pretty } from "./format.js";

function input(label, name, value = "", attrs = {}) {
  const id = `e-${name}`;
  return el("div", { class: "field" }, el("label", { for: id }, label), el("input", { id, name, value, ...attrs }));
}

function area(label, name, value, rows) {
  const id = `e-${name}`;
  return el("div", { class: "field wide" }, el("label", { for: id }, label),
    el("textarea", { id, name, rows, spellcheck: "false" }, value));
}

function parseJson(name, text, fallback) {
  if (!text.trim()) return fallback;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${name}: not valid JSON (${e.message})`);
  }
}

function request(form) {
  const data = new FormData(form);
  const get = (n) => String(data.get(n) || "").trim();
  const body = { payload: parseJson("payload", String(data.get("payload") || ""), {}) };
  const headers = parseJson("headers", get("headers"), null);
  if (headers) body.headers = headers;
  if (get("priority")) body.priority = Number(get("priority"));
  if (get("maxAttempts")) body.maxAttempts = Number(get("maxAttempts"));
  if (get("delay")) body.delay = `${get("delay")}s`;
  if (get("idempotencyKey")) body.idempotencyKey = get("idempotencyKey");
  if (get("concurrencyKey")) body.concurrencyKey = get("concurrencyKey");
  return { queue: get("queue"), body };
}

function form(who, job, message) {
  const f = el("form", { class: "enqueue", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const { queue, body } = request(f);
      if (!queue) throw new Error("queue: a queue name is required");
      const answer = await postJson(`/v1/queues/${encodeURIComponent(queue)}/jobs`, body);
      replace(message, notice(answer.deduplicated ? "Deduplicated: the job with this idempotency key is " : "Enqueued job ", "info"),
        link(`#/job/${encodeURIComponent(answer.jobId)}`, `job ${answer.jobId}`));
    } catch (err) {
      replace(message, notice(err.message));
    }
  } },
  input("Queue", "queue", job ? job.queue : "", { required: true }),
  area("Payload (JSON)", "payload", job ? pretty(job.payload ?? {}) : "{\n  \n}", 10),
  area("Headers (JSON object of strings)", "headers", job && job.headers ? pretty(job.headers) : "", 3),
  input("Priority", "priority", job && job.priority ? job.priority : "", { type: "number" }),
  input("Max attempts", "maxAttempts", job && job.maxAttempts ? job.maxAttempts : "", { type: "number" }),
  input("Delay (seconds)", "delay", "", { type: "number", step: "any" }),
  input("Idempotency key", "idempotencyKey"),
  input("Concurrency key", "concurrencyKey", job ? job.concurrencyKey || "" : ""),
  el("div", { class: "field buttons" }, el("button", { type: "submit", disabled: !who.canEnqueue,
    title: who.canEnqueue ? null : "needs an API key with the enqueue scope" }, "Enqueue")));
  return f;
}

export function render(main, { who, params }) {
  const message = el("div", { "aria-live": "polite" });
  const copy = params.get("copy");
  replace(main, el("h1", {}, copy ? `Enqueue a copy of job ${copy}` : "Enqueue a job"), message);
  if (!copy) {
    main.appendChild(form(who, null, message));
    return null;
  }
  getJson(`/v1/jobs/${encodeURIComponent(copy)}`).then(
    (job) => main.appendChild(form(who, job, message)),
    (err) => replace(message, notice(err.message)));
  return null;
}
