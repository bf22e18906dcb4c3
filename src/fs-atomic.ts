/** Durable file replacement, shared by every file Vigil rewrites (approvals, accepted policy, signatures, key store, exports). */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

/** Make a rename or a new file in `dir` durable (POSIX: fsync the directory; Windows can neither open nor needs it). */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch (e) {
    if (process.platform !== "win32") throw e;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  let dh: fsp.FileHandle | undefined;
  try {
    dh = await fsp.open(dir, "r");
    await dh.sync();
  } catch (e) {
    if (process.platform !== "win32") throw e;
  } finally {
    await dh?.close();
  }
}

/**
 * Replace `file` atomically and durably: a unique temporary file beside it (created with `mode`,
 * whatever the umask), written, fsynced, renamed over `file`, then the directory fsynced. On failure
 * the temporary file is removed and `file` is as it was. Errors are the file system's.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let renamed = false;
  try {
    const fd = fs.openSync(tmp, "wx", mode);
    try {
      fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    renamed = true;
    fsyncDirSync(path.dirname(file));
  } finally {
    if (!renamed) fs.rmSync(tmp, { force: true });
  }
}
