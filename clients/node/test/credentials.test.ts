// Client credentials: no API key in the clear to a host off this machine unless `insecure` (or
// SPOOL_INSECURE=1) says so, and the key read from a file (tokenFile, SPOOL_TOKEN_FILE) so that it
// need never be on a command line.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client, isLocal } from "../src/index.js";
import { ROOT, startSpoold, type Spoold } from "./harness.js";

const OFF_MACHINE = ["10.1.2.3:50051", "spool.example.com:50051", "http://spool.example.com:8080", "[2001:db8::1]:50051"];
const ON_MACHINE = ["127.0.0.1:50051", "localhost:50051", "[::1]:50051", "127.0.0.2:1", "http://127.0.0.1:5"];

describe("credentials", () => {
  test("loopback addresses and localhost are local", () => {
    for (const address of ON_MACHINE) assert.ok(isLocal(address), address);
    for (const address of OFF_MACHINE) assert.ok(!isLocal(address), address);
  });

  test("a key in the clear off this machine is refused unless insecure", () => {
    for (const address of OFF_MACHINE) {
      assert.throws(() => new Client({ address, token: "spool_x_y" }), /in the clear.*SPOOL_INSECURE/);
      assert.ok(new Client({ address, token: "spool_x_y", insecure: true }));
      assert.ok(new Client({ address, token: "spool_x_y", tls: true }));
      assert.ok(new Client({ address })); // no key, nothing to refuse
    }
  });

  test("an unreadable or empty token file is an error naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "spool-"));
    writeFileSync(join(dir, "empty"), " \n");
    assert.throws(() => new Client({ tokenFile: join(dir, "empty") }), /tokenFile: .* is empty/);
    assert.throws(() => new Client({ tokenFile: join(dir, "missing") }), /tokenFile: cannot read/);
  });
});

describe("a key from a file, against spoold with keys required", () => {
  let spoold: Spoold;
  let key: string;

  before(async () => {
    spoold = await startSpoold({ SPOOL_AUTH: "required" });
    const out = execFileSync(join(ROOT, ".venv", "bin", "spoold"), ["keys", "create", "--name", "t", "--scope", "read", "--queues", "q"], {
      env: { ...process.env, SPOOL_DATABASE_URL: spoold.databaseUrl },
      encoding: "utf8",
    });
    key = out.trim().split("\n").pop()!.trim();
  });
  after(async () => spoold?.close());

  test("tokenFile and SPOOL_TOKEN_FILE are sent as the key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spool-"));
    const file = join(dir, "key");
    writeFileSync(file, `${key}\n`);
    const page = await new Client({ address: spoold.address, tokenFile: file }).list({ pageSize: 1 });
    assert.ok(Array.isArray(page.jobs));
    process.env.SPOOL_TOKEN_FILE = file;
    try {
      assert.ok(Array.isArray((await new Client({ address: spoold.address }).list({ pageSize: 1 })).jobs));
    } finally {
      delete process.env.SPOOL_TOKEN_FILE;
    }
    await assert.rejects(new Client({ address: spoold.address }).list({ pageSize: 1 }), /API key|UNAUTHENTICATED|unauthenticated/i);
  });
});
