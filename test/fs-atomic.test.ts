/** writeFileAtomicSync: the file is replaced whole or not at all; writeFileExclusive: created whole, never replacing; the asked mode, no temporary file left. */
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fsyncDir, fsyncDirSync, writeFileAtomicSync, writeFileExclusive, writeFileExclusiveSync } from "../src/fs-atomic.js";

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

test("writeFileExclusive(Sync): creates whole with the mode, never replaces, and a failed write leaves no file under the name", async () => {
  const dir = fs.mkdtempSync(path.join(tmp, "d-"));
  const a = path.join(dir, "keystore-a.json");
  const b = path.join(dir, "keystore-b.json");
  const old = process.umask(0o000);
  try {
    writeFileExclusiveSync(a, "first");
    await writeFileExclusive(b, "second", 0o640);
  } finally {
    process.umask(old);
  }
  assert.equal(fs.statSync(a).mode & 0o777, 0o600);
  assert.equal(fs.statSync(b).mode & 0o777, 0o640);
  assert.throws(() => writeFileExclusiveSync(a, "other"), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
  await assert.rejects(writeFileExclusive(b, "other"), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
  assert.equal(fs.readFileSync(a, "utf8"), "first");
  assert.equal(fs.readFileSync(b, "utf8"), "second");
  // A write that fails (here: data node refuses to write) leaves nothing under the name, nor a temporary file.
  const c = path.join(dir, "keystore-c.json");
  assert.throws(() => writeFileExclusiveSync(c, 42 as unknown as string));
  await assert.rejects(writeFileExclusive(c, 42 as unknown as string));
  assert.deepEqual(fs.readdirSync(dir).sort(), ["keystore-a.json", "keystore-b.json"]);
});

test("writeFileExclusive(Sync) on a file system without hard links (link answers EPERM, as FAT does): the file is still created whole, once", async () => {
  const dir = fs.mkdtempSync(path.join(tmp, "d-"));
  let refused = 0;
  const eperm = (): never => {
    refused++;
    throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
  };
  const [linkSync, link] = [fs.linkSync, fsp.link];
  (fs as { linkSync: unknown }).linkSync = eperm;
  (fsp as { link: unknown }).link = async () => eperm();
  try {
    writeFileExclusiveSync(path.join(dir, "a.json"), "first");
    await writeFileExclusive(path.join(dir, "b.json"), "second");
    assert.throws(() => writeFileExclusiveSync(path.join(dir, "a.json"), "other"), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
    await assert.rejects(writeFileExclusive(path.join(dir, "b.json"), "other"), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
  } finally {
    (fs as { linkSync: unknown }).linkSync = linkSync;
    (fsp as { link: unknown }).link = link;
  }
  assert.equal(fs.readFileSync(path.join(dir, "a.json"), "utf8"), "first");
  assert.equal(fs.readFileSync(path.join(dir, "b.json"), "utf8"), "second");
  assert.deepEqual(fs.readdirSync(dir).sort(), ["a.json", "b.json"]);
  assert.equal(refused, 4, "every write met the refused link");
});
