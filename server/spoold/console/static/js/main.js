// The console's shell: who is signed in, the sign-in form, and the hash router
// (#/queues, #/jobs?status=dead&error=timeout, #/job/42, #/dead, #/enqueue?copy=42, #/schedules, #/pipelines?state=failed, #/pipeline/7).

import { onSignedOut, session } from "./api.js";
import { el, notice, replace } from "./dom.js";
import * as bulk from "./bulk.js";
import * as dead from "./dead.js";
import * as enqueue from "./enqueue.js";
import * as job from "./job.js";
import * as jobs from "./jobs.js";
import * as pipeline from "./pipeline.js";
import * as pipelines from "./pipelines.js";
import * as queues from "./queues.js";
import * as schedules from "./schedules.js";

const PAGES = { queues, jobs, job, dead, enqueue, bulk, schedules, pipeline, pipelines };
// The page whose nav link is marked for each page that has none of its own.
const UNDER = { job: "jobs", pipeline: "pipelines" };
const main = document.getElementById("page");
const whoBox = document.getElementById("who");
let who = null;
let stop = null;

function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "queues";
  const [path, query = ""] = hash.split("?");
  const [name, ...rest] = path.split("/");
  return { name, id: rest.map(decodeURIComponent).join("/"), params: new URLSearchParams(query) };
}

function leave() {
  if (stop) stop();
  stop = null;
}

function render() {
  leave();
  if (!who) return;
  const { name, id, params } = route();
  const page = PAGES[name];
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === (UNDER[name] || name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!page) {
    replace(main, notice(`No page ${JSON.stringify(name)}.`), el("a", { href: "#/queues" }, "Queues"));
    return;
  }
  stop = page.render(main, { who, id, params }) || null;
}

function showWho() {
  if (!who) return replace(whoBox);
  const label = who.signedIn ? `key ${who.keyId} (${who.scopes.join(", ")})` : "no sign-in needed (loopback)";
  const out = who.signedIn ? el("button", { type: "button", class: "link", onclick: signOut }, "Sign out") : null;
  replace(whoBox, el("span", { class: who.canAct ? "" : "readonly" }, label, who.canAct ? "" : " · read-only"), " ", out);
}

async function signOut() {
  await session.signOut().catch(() => null);
  who = null;
  showSignIn("Signed out.", "info");
}

function showSignIn(message, kind = "error") {
  leave();
  who = null;
  showWho();
  const input = el("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true,
    placeholder: "spool_…", "aria-describedby": "key-help" });
  const status = el("div", { "aria-live": "polite" }, message ? notice(message, kind) : null);
  const form = el("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    try {
      who = await session.signIn(input.value);
      showWho();
      render();
    } catch (err) {
      replace(status, notice(err.message));
    }
  } },
  el("h1", {}, "Sign in"),
  el("label", { for: "key" }, "API key"), input,
  el("p", { id: "key-help", class: "muted" },
    "A key with the read scope sees everything; the admin scope is needed to act. ",
    "The key is kept in an HttpOnly cookie of this site only."),
  el("button", { type: "submit" }, "Sign in"), status);
  replace(main, form);
  input.focus();
}

onSignedOut((err) => showSignIn(`${err.message} — sign in again.`));
window.addEventListener("hashchange", render);

async function boot() {
  try {
    who = await session.get();
    showWho();
    render();
  } catch (err) {
    if (err.code !== "unauthenticated") replace(main, notice(err.message));
  }
}

boot();
