// A live spoold for the Node tests: a fresh database (on SPOOL_TEST_DATABASE_URL's server, or an
// embedded PostgreSQL started through the repository's Python tooling) and a server on a free port.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Client } from "../src/index.js";

// dist/test/harness.js -> the repository root
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const VENV_BIN = join(ROOT, ".venv", "bin");
const PGTOOL = join(ROOT, "tests", "e2e", "pgtool.py");

function python(args: string[]): string {
  return execFileSync(join(VENV_BIN, "python"), [PGTOOL, ...args], { encoding: "utf8" }).trim();
}

/** Resolves with the first line matching `pattern` (its match), rejecting on exit or timeout. */
export function waitForLine(
  child: ChildProcess,
  stream: NodeJS.ReadableStream,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<RegExpMatchArray> {
  return new Promise((resolveLine, reject) => {
    const lines = createInterface({ input: stream });
    const seen: string[] = [];
    const timer = setTimeout(() => fail(new Error(`no line matching ${pattern} in ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null) => fail(new Error(`exited (${code}) before ${pattern}:\n${seen.join("\n")}`));
    function fail(err: Error) {
      clearTimeout(timer);
      lines.close();
      child.off("exit", onExit);
      reject(err);
    }
    lines.on("line", (line) => {
      seen.push(line);
      const match = line.match(pattern);
      if (match) {
        clearTimeout(timer);
        child.off("exit", onExit);
        lines.close();
        resolveLine(match);
      }
    });
    child.on("exit", onExit);
  });
}

async function adminUrl(): Promise<{ url: string; stop: () => Promise<void> }> {
  const given = process.env["SPOOL_TEST_DATABASE_URL"];
  if (given) {
    return { url: given, stop: async () => {} };
  }
  const child = spawn(join(VENV_BIN, "python"), [PGTOOL, "embedded"], { stdio: ["pipe", "pipe", "inherit"] });
  const [url] = await waitForLine(child, child.stdout!, /^postgres\S+$/);
  return {
    url,
    stop: async () => {
      child.stdin!.end(); // pgtool stops the server when its stdin closes
      if (child.exitCode === null) await once(child, "exit");
    },
  };
}

export interface Spoold {
  address: string;
  client: Client;
  databaseUrl: string;
  close(): Promise<void>;
}

/** tests/e2e/faulty_spoold.py: spoold with SPOOL_TEST_FAULTS injected by a server interceptor. */
export const FAULTY_SPOOLD = join(ROOT, "tests", "e2e", "faulty_spoold.py");

/**
 * Starts spoold on a new database; `env` adds SPOOL_* settings (e.g. SPOOL_REAPER_INTERVAL).
 * With `script`, that Python file is run with spoold's arguments instead (e.g. FAULTY_SPOOLD).
 */
export async function startSpoold(env: Record<string, string> = {}, script?: string): Promise<Spoold> {
  if (!existsSync(join(VENV_BIN, "spoold"))) {
    throw new Error(`no ${VENV_BIN}/spoold: run \`make install\` first`);
  }
  const admin = await adminUrl();
  const databaseUrl = python(["create", admin.url]);
  const args = ["--host", "127.0.0.1", "--port", "0"];
  const [command, argv] = script ? [join(VENV_BIN, "python"), [script, ...args]] : [join(VENV_BIN, "spoold"), args];
  const server = spawn(command, argv, {
    env: {
      ...process.env,
      SPOOL_DATABASE_URL: databaseUrl,
      SPOOL_LEASE_POLL_INTERVAL: "0.2",
      SPOOL_SHUTDOWN_GRACE: "1",
      SPOOL_HTTP_PORT: "0",
      ...env,
    },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let port: string | undefined;
  try {
    // "spoold serving: gRPC on HOST:PORT" (older servers: "spoold serving on HOST:PORT").
    [, port] = await waitForLine(server, server.stderr!, /spoold serving(?::? gRPC)? on [^:\s]+:(\d+)/);
  } catch (err) {
    server.kill("SIGKILL");
    python(["drop", databaseUrl, admin.url]);
    await admin.stop();
    throw err;
  }
  if (process.env["SPOOL_TEST_VERBOSE"]) server.stderr!.pipe(process.stderr);
  else server.stderr!.resume();
  const address = `127.0.0.1:${port}`;
  return {
    address,
    client: new Client(address),
    databaseUrl,
    close: async () => {
      if (server.exitCode === null) {
        server.kill("SIGTERM");
        await once(server, "exit");
      }
      python(["drop", databaseUrl, admin.url]);
      await admin.stop();
    },
  };
}

/** Polls `predicate` until it is truthy; fails after `withinMs`. */
export async function waitUntil<T>(
  predicate: () => Promise<T> | T,
  withinMs = 10_000,
  intervalMs = 20,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A queue name no other test uses. */
export function queueName(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
