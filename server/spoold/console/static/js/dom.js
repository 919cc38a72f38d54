// Building the page. Text from the server (payloads, errors, queue names) only ever goes in as
// text nodes: nothing here parses HTML, so a payload like <img src=x onerror=...> shows as text.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function notice(text, kind = "error") {
  return el("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// A link inside the console (hash routes), e.g. link("#/job/5", "5").
export function link(href, ...children) {
  return el("a", { href }, ...children);
}

// A button for an action that needs the admin scope: disabled, with the reason on hover, for a
// key that lacks it (the server refuses it anyway).
export function actionButton(who, label, onclick, attrs = {}) {
  const allowed = who.canAct;
  return el(
    "button",
    {
      type: "button",
      ...attrs,
      disabled: !allowed || attrs.disabled,
      title: allowed ? attrs.title : "needs an API key with the admin scope",
      onclick,
    },
    label,
  );
}
