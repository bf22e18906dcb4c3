/** Durable file writes: replacement of every file Vigil rewrites (approvals, accepted policy, signatures, key store) and creation of the files it writes once (exported and generated keystores, deposit data). */
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

/** What link(2) answers on a file system without hard links. */
const NO_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** A unique temporary name beside `file`. */
const tmpBeside = (file: string): string => path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);

/** Create `file` (it must not exist) with `mode` whatever the umask, write `data` and fsync it. */
function writeNewSync(file: string, data: string | Uint8Array, mode: number): void {
  const fd = fs.openSync(file, "wx", mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replace `file` atomically and durably: a unique temporary file beside it (created with `mode`,
 * whatever the umask), written, fsynced, renamed over `file`, then the directory fsynced. On failure
 * the temporary file is removed and `file` is as it was. Errors are the file system's.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = tmpBeside(file);
  let renamed = false;
  try {
    writeNewSync(tmp, data, mode);
    fs.renameSync(tmp, file);
    renamed = true;
    fsyncDirSync(path.dirname(file));
  } finally {
    if (!renamed) fs.rmSync(tmp, { force: true });
  }
}

/**
 * Create `file`, never replacing one, durably and whole: a temporary file beside it (with `mode`)
 * is written and fsynced, then linked to its name (EEXIST if the name is taken) and unlinked; then
 * the directory is fsynced unless `syncDir` is false (the caller syncs it once for many files). A
 * crash leaves no file or the whole file under that name, never a torn one — except on a file
 * system without hard links (FAT, exFAT), where the file is created under its name directly
 * (exclusively, and removed if the write fails, but a crash mid-write can leave it torn).
 */
export function writeFileExclusiveSync(file: string, data: string | Uint8Array, mode = 0o600, syncDir = true): void {
  const tmp = tmpBeside(file);
  let linked = true;
  try {
    writeNewSync(tmp, data, mode);
    try {
      fs.linkSync(tmp, file);
    } catch (e) {
      if (!NO_LINKS.has((e as NodeJS.ErrnoException).code ?? "")) throw e;
      linked = false;
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  if (!linked) {
    // A file system without hard links (FAT, exFAT, some network shares: deposit data often goes
    // to a USB stick): the file itself, exclusive, removed again if it cannot be written whole.
    try {
      writeNewSync(file, data, mode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") fs.rmSync(file, { force: true });
      throw e;
    }
  }
  if (syncDir) fsyncDirSync(path.dirname(file));
}

/** The same as writeFileExclusiveSync, on the thread pool. */
export async function writeFileExclusive(file: string, data: string | Uint8Array, mode = 0o600, syncDir = true): Promise<void> {
  const tmp = tmpBeside(file);
  let linked = true;
  try {
    await writeNew(tmp, data, mode);
    try {
      await fsp.link(tmp, file);
    } catch (e) {
      if (!NO_LINKS.has((e as NodeJS.ErrnoException).code ?? "")) throw e;
      linked = false;
    }
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  if (!linked) {
    try {
      await writeNew(file, data, mode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") await fsp.rm(file, { force: true });
      throw e;
    }
  }
  if (syncDir) await fsyncDir(path.dirname(file));
}

async function writeNew(file: string, data: string | Uint8Array, mode: number): Promise<void> {
  const fh = await fsp.open(file, "wx", mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
