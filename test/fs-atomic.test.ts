/** writeFileAtomicSync: the file is replaced whole or not at all, with the asked mode, and no temporary file stays. */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fsyncDir, fsyncDirSync, writeFileAtomicSync } from "../src/fs-atomic.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-fs-atomic-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("creates and replaces with the given mode whatever the umask; nothing else is left in the directory", async () => {
  const dir = fs.mkdtempSync(path.join(tmp, "d-"));
  const file = path.join(dir, "state.json");
  const old = process.umask(0o000);
  try {
    writeFileAtomicSync(file, "one");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    writeFileAtomicSync(file, Buffer.from("two"), 0o644);
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
  } finally {
    process.umask(old);
  }
  assert.equal(fs.readFileSync(file, "utf8"), "two");
  assert.deepEqual(fs.readdirSync(dir), ["state.json"]);
  fsyncDirSync(dir);
  await fsyncDir(dir);
});

test("a failed replace leaves the target as it was and no temporary file", () => {
  const dir = fs.mkdtempSync(path.join(tmp, "d-"));
  const target = path.join(dir, "taken");
  fs.mkdirSync(target); // renaming a file over a directory fails
  fs.writeFileSync(path.join(target, "inside"), "kept");
  assert.throws(() => writeFileAtomicSync(target, "new"), (e: NodeJS.ErrnoException) => e.code === "EISDIR");
  assert.deepEqual(fs.readdirSync(dir), ["taken"]);
  assert.equal(fs.readFileSync(path.join(target, "inside"), "utf8"), "kept");
  assert.throws(() => writeFileAtomicSync(path.join(dir, "missing", "x"), "new"), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
});
