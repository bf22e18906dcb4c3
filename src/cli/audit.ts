/** `vigil audit verify|tail|head`: check and read the hash-chained audit log of a data directory. */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Writable } from "node:stream";
import { AUDIT_LOG_FILE, formatEntry, parseAnchor, parseLine, readLastLines, verifyAuditLog } from "../audit/log.js";
import { VigilError } from "../errors.js";
import { AUDIT_HEAD_FILE } from "../config/files.js";

export interface AuditFlags {
  dataDir: string;
  /** Output (default stdout); tests pass their own. */
  out?: Writable;
}

const write = (out: Writable | undefined, text: string): void => {
  (out ?? process.stdout).write(text);
};

/** One readable line for a log line (an entry, or a note that the line is not one). */
function formatLine(text: string): string {
  const p = parseLine(text);
  if (p.kind === "garbage") return `?? not an audit entry (${p.why}): ${JSON.stringify(text.slice(0, 80))}`;
  return p.hashOk && p.canonical ? formatEntry(p.entry) : `${formatEntry(p.entry)}  [EDITED: hash does not match]`;
}

/**
 * `vigil audit verify [--anchor <seq>:<hash>]`: recompute the whole chain and check the head
 * anchor (and an external one). Prints the result; process.exitCode = 1 when not ok.
 */
export async function auditVerify(flags: AuditFlags & { anchor?: string }): Promise<boolean> {
  const expect = flags.anchor !== undefined ? parseAnchor(flags.anchor) : undefined;
  const file = path.join(flags.dataDir, AUDIT_LOG_FILE);
  if (!fs.existsSync(file) && !fs.existsSync(path.join(flags.dataDir, AUDIT_HEAD_FILE))) {
    // Nothing to verify is not a verified log: a wrong --data-dir, or a log deleted with its anchor.
    write(flags.out, `${file}: NOT OK, no audit log and no anchor in ${flags.dataDir}\n`);
    process.exitCode = 1;
    return false;
  }
  const r = await verifyAuditLog(flags.dataDir, { expect });
  const lines: string[] = [];
  if (r.ok) {
    lines.push(`${file}: OK, ${r.entries} entries, head ${r.head.seq}:${r.head.hash}${expect ? `, external anchor ${expect.seq} matches` : ""}`);
  } else {
    lines.push(`${file}: NOT OK, ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"} (${r.entries} entries)`);
    for (const p of r.problems) lines.push(`  ${p.line > 0 ? `line ${p.line}: ` : ""}${p.problem}`);
  }
  for (const w of r.warnings) lines.push(`  note: ${w}`);
  write(flags.out, lines.join("\n") + "\n");
  if (!r.ok) process.exitCode = 1;
  return r.ok;
}

/** `vigil audit head`: `<seq>:<hash>` of the last entry, to copy elsewhere (external anchoring). */
export async function auditHead(flags: AuditFlags): Promise<string> {
  const file = path.join(flags.dataDir, AUDIT_LOG_FILE);
  const { lines } = await readLastLines(file, 1);
  let head = `-1:${"0".repeat(64)}`;
  if (lines.length > 0) {
    const p = parseLine(lines[0]);
    if (p.kind === "garbage" || !p.hashOk || !p.canonical) {
      throw new VigilError("unavailable", "AUDIT_LOG_CORRUPT", `the last line of ${file} is not a valid audit entry: run \`vigil audit verify\``);
    }
    head = `${p.entry.seq}:${p.entry.hash}`;
  }
  write(flags.out, head + "\n");
  return head;
}

export interface TailFlags extends AuditFlags {
  /** How many of the last entries to print (default 20). */
  lines?: number;
  /** Keep printing entries as they are appended, until SIGINT (or `signal`). */
  follow?: boolean;
  /** Stops following (tests); SIGINT does too. */
  signal?: AbortSignal;
  /** Polling period while following (default 1000 ms; fs.watch wakes it sooner where it works). */
  pollMs?: number;
}

/** `vigil audit tail [-n N] [--follow]`: the last entries, one readable line each. */
export async function auditTail(flags: TailFlags): Promise<void> {
  const count = flags.lines ?? 20;
  if (!Number.isSafeInteger(count) || count < 0) throw new VigilError("bad_request", "INVALID_OPTION", `--lines must be a non-negative integer`);
  const file = path.join(flags.dataDir, AUDIT_LOG_FILE);
  const { lines, end } = await readLastLines(file, count);
  if (lines.length > 0) write(flags.out, lines.map(formatLine).join("\n") + "\n");
  if (!flags.follow) return;
  await follow(file, end, flags);
}

/** Prints complete lines appended after `offset` until stopped. */
async function follow(file: string, offset: number, flags: TailFlags): Promise<void> {
  if (flags.signal?.aborted) return;
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  flags.signal?.addEventListener("abort", stop, { once: true });
  process.once("SIGINT", stop);

  let pos = offset;
  let carry = Buffer.alloc(0);
  let wake: (() => void) | null = null;
  let poked = false; // a change seen while reading: read again at once
  const poke = (): void => {
    const w = wake;
    wake = null;
    if (w) w();
    else poked = true;
  };
  ac.signal.addEventListener("abort", poke, { once: true });
  // fs.watch on the directory also sees the file being created or replaced.
  let watcher: fs.FSWatcher | null = null;
  try {
    watcher = fs.watch(path.dirname(file), (_event, name) => {
      if (name === null || name === path.basename(file)) poke();
    });
    watcher.on("error", () => undefined);
  } catch {
    watcher = null; // polling only
  }
  const timer = setInterval(poke, flags.pollMs ?? 1000);

  try {
    while (!ac.signal.aborted) {
      let fh: fsp.FileHandle | null = null;
      poked = false;
      try {
        fh = await fsp.open(file, "r");
        const { size } = await fh.stat();
        if (size < pos) {
          write(flags.out, `-- ${file} shrank (truncated or replaced): following it from its start --\n`);
          pos = 0;
          carry = Buffer.alloc(0);
        }
        if (size > pos) {
          const buf = Buffer.alloc(size - pos);
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          pos += bytesRead;
          const data = Buffer.concat([carry, buf.subarray(0, bytesRead)]);
          const nl = data.lastIndexOf(0x0a);
          if (nl >= 0) {
            const text = data.subarray(0, nl).toString("utf8").split("\n");
            write(flags.out, text.map(formatLine).join("\n") + "\n");
            carry = Buffer.from(data.subarray(nl + 1));
          } else {
            carry = data;
          }
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      } finally {
        await fh?.close();
      }
      if (ac.signal.aborted) break;
      if (poked) poked = false;
      else await new Promise<void>((r) => (wake = r));
    }
  } finally {
    clearInterval(timer);
    watcher?.close();
    process.removeListener("SIGINT", stop);
    flags.signal?.removeEventListener("abort", stop);
  }
}
