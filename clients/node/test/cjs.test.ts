// The package as a new user's project gets it: `npm init -y` (CommonJS, no "type": "module"), the
// built package installed from this directory, then require() and import() of it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

// dist/test/cjs.test.js -> clients/node
const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("the built package", () => {
  test("require() works from a fresh `npm init -y` project, and so does import()", () => {
    const project = mkdtempSync(join(tmpdir(), "spool-cjs-"));
    try {
      execFileSync("npm", ["init", "-y"], { cwd: project, stdio: "ignore" });
      execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", PACKAGE], { cwd: project, stdio: "ignore" });
      writeFileSync(
        join(project, "main.js"),
        'const { Client, Worker, JobState } = require("@spool/client");\n' +
          'const client = new Client("127.0.0.1:1");\n' +
          "console.log(typeof Worker, JobState.SUCCEEDED, client.address);\n",
      );
      writeFileSync(
        join(project, "main.mjs"),
        'import { Client, Worker } from "@spool/client";\nconsole.log(typeof Client, typeof Worker);\n',
      );
      assert.equal(execFileSync("node", ["main.js"], { cwd: project, encoding: "utf8" }).trim(), "function 3 127.0.0.1:1");
      assert.equal(execFileSync("node", ["main.mjs"], { cwd: project, encoding: "utf8" }).trim(), "function function");
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});
