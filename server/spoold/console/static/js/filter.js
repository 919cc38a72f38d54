// A job search as URL parameters (so that a search can be pasted into a chat) and as the
// JobFilter of ListJobs / Requeue. Nothing is checked here: the server validates the filter, and
// its error (field named) is what an invalid URL shows.

export const STATUSES = ["ready", "scheduled", "retrying", "throttled", "waiting", "running", "succeeded", "dead", "cancelled"];

// URL parameter -> JobFilter field, for the plain text ones.
const TEXT = { error: "errorContains", payload: "payloadContains", idem: "idempotencyKey", ckey: "concurrencyKey",
  pipeline: "pipelineId" };
const TIMES = { created_after: "createdAfter", created_before: "createdBefore",
  finished_after: "finishedAfter", finished_before: "finishedBefore" };

function list(params, name) {
  return params.getAll(name).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

// A time from the URL or a datetime-local field, as RFC 3339 when it reads as a time (in the
// browser's zone when it has none); anything else goes as it is, for the server to refuse.
export function timestamp(text) {
  const when = new Date(text);
  return Number.isNaN(when.getTime()) ? text : when.toISOString();
}

export function jobFilter(params) {
  const filter = {};
  const queues = list(params, "queue");
  if (queues.length) filter.queues = queues;
  const statuses = list(params, "status");
  if (statuses.length) filter.statuses = statuses.map((s) => `STATUS_${s.toUpperCase()}`);
  for (const [name, field] of Object.entries(TEXT)) {
    const value = params.get(name);
    if (value) filter[field] = value;
  }
  for (const [name, field] of Object.entries(TIMES)) {
    const value = params.get(name);
    if (value) filter[field] = timestamp(value);
  }
  return filter;
}

export function listRequest(params, pageSize = 50) {
  const request = { filter: jobFilter(params), pageSize: Number(params.get("size") || pageSize) };
  if (params.get("order") === "oldest") request.order = "ORDER_OLDEST_FIRST";
  if (params.get("page")) request.pageToken = params.get("page");
  return request;
}

// The form's fields as URL parameters (empty ones left out).
export function paramsOf(form) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (String(value).trim()) params.append(name, String(value).trim());
  }
  return params;
}

export function describe(params) {
  const parts = [];
  for (const [name, value] of params) if (name !== "page") parts.push(`${name}=${value}`);
  return parts.length ? parts.join(" · ") : "every job";
}
