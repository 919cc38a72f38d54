// Calls to spoold: Connect JSON for every RPC (the same service code, validation and error table
// as gRPC), the REST job routes, and the console's own session routes. The API key travels in the
// HttpOnly cookie; every POST carries the CSRF token from the readable spool_csrf cookie.

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code; // Connect code: "unauthenticated", "permission_denied", ...
    this.status = status;
  }
}

const listeners = new Set();

// fn(error) is called whenever a call answers unauthenticated (key expired, revoked, or missing).
export function onSignedOut(fn) {
  listeners.add(fn);
}

export function signedOut(error) {
  for (const fn of listeners) fn(error);
}

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "spool_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = null;
  }
  if (response.ok && body !== null) return body;
  const error = errorOf(response.status, body, text);
  if (error.code === "unauthenticated") signedOut(error);
  throw error;
}

function errorOf(status, body, text) {
  if (body && body.error) {
    // AIP-193 (REST routes): {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": ...}}
    return new ApiError(String(body.error.status || "").toLowerCase(), body.error.message || text, status);
  }
  if (body && body.code) return new ApiError(body.code, body.message || body.code, status);
  return new ApiError("unknown", `HTTP ${status}`, status);
}

async function send(method, path, body) {
  const headers = { "x-spool-csrf": csrfToken() };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError("unavailable", `cannot reach spoold: ${e.message}`, 0);
  }
  return answer(response);
}

// One RPC through Connect: rpc("QueueService", "ListJobs", {filter: {...}}).
export function rpc(service, method, request = {}) {
  return send("POST", `/spool.v1.${service}/${method}`, request);
}

// Every page of a List RPC, up to `most` items: everyPage("AdminService", "ListQueues", "queues").
export async function everyPage(service, method, field, request = {}, most = 10000) {
  const found = [];
  let pageToken = "";
  do {
    const answer = await rpc(service, method, pageToken ? { ...request, pageToken } : request);
    found.push(...(answer[field] || []));
    pageToken = answer.nextPageToken || "";
  } while (pageToken && found.length < most);
  return found;
}

export function getJson(path) {
  return send("GET", path);
}

export function postJson(path, body) {
  return send("POST", path, body);
}

export const session = {
  get: () => getJson("/console/session"),
  signIn: (key) => send("POST", "/console/session", { key }),
  signOut: () => send("DELETE", "/console/session"),
};

// Server-sent events, with the end of the stream (an `end` or `error` event) told apart.
export function follow(path, { onMessage, onEnd, onError }) {
  const source = new EventSource(path, { withCredentials: true });
  source.onmessage = (e) => onMessage(JSON.parse(e.data));
  source.addEventListener("end", (e) => {
    source.close();
    if (onEnd) onEnd(JSON.parse(e.data));
  });
  source.addEventListener("error", (e) => {
    if (e.data) {
      // an error event the server sent: the key went bad, or the server is stopping
      source.close();
      const body = JSON.parse(e.data);
      const err = errorOf(0, body, "");
      if (err.code === "unauthenticated") signedOut(err);
      if (onError) onError(err);
    } else if (source.readyState === EventSource.CLOSED && onError) {
      onError(new ApiError("unavailable", "the live stream closed", 0));
    }
  });
  return () => source.close();
}
