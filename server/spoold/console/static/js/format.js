// Numbers and times for people: 12.4k, 1m03s; times in the browser's zone with UTC on hover.

export function count(n) {
  const v = Number(n || 0);
  if (v < 1000) return String(v);
  for (const [size, unit] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (v >= size) {
      const scaled = v / size;
      return `${scaled >= 100 ? Math.round(scaled) : scaled.toFixed(1).replace(/\.0$/, "")}${unit}`;
    }
  }
  return String(v);
}

// Seconds as 850ms, 4.2s, 1m03s, 2h05m, 3d04h.
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1).replace(/\.0$/, "") : Math.round(s)}s`;
  const pad = (x) => String(x).padStart(2, "0");
  const whole = Math.round(s);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${pad(whole % 60)}s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)}h${pad(Math.floor((whole % 3600) / 60))}m`;
  return `${Math.floor(whole / 86400)}d${pad(Math.floor((whole % 86400) / 3600))}h`;
}

// A proto JSON Duration ("3.5s") in seconds.
export function protoSeconds(text) {
  if (!text) return null;
  return Number(String(text).replace(/s$/, ""));
}

// A <time> element: the browser's zone shown, UTC on hover.
export function time(iso) {
  const node = document.createElement("time");
  if (!iso) return node;
  const when = new Date(iso);
  node.dateTime = when.toISOString();
  node.title = `${when.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")} (UTC)`;
  node.textContent = when.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  return node;
}

export function ago(iso) {
  if (!iso) return "";
  return `${duration((Date.now() - new Date(iso).getTime()) / 1000)} ago`;
}

// A payload, result or checkpoint as people read it: pretty JSON, else the text, else base64.
export function pretty(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

export function decodeBase64(text) {
  if (!text) return "";
  try {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const decoded = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    try {
      return JSON.stringify(JSON.parse(decoded), null, 2);
    } catch {
      return decoded;
    }
  } catch {
    return text;
  }
}

export function shortStatus(state) {
  return String(state || "").replace(/^(STATE|STATUS)_/, "");
}
