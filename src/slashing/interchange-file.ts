/**
 * EIP-3076 interchange files, read and written without holding them in memory (an export of 10,000
 * validators × 100 records is ~160 MiB of JSON; parsed whole, over 1 GiB). Reading: one pass over the
 * bytes checks the top-level JSON structure and notes where `metadata` and each `data` entry lie; the
 * entries are then parsed and validated one at a time while a store imports them. Writing: a store
 * hands over one entry at a time from its snapshot.
 */
import fs from "node:fs";
import path from "node:path";
import { VigilError } from "../errors.js";
import { fsyncDirSync } from "../fs-atomic.js";
import { invalidInterchange, parseInterchangeMetadata, parseInterchangeValidator, type InterchangeSource } from "./interchange.js";
import type { InterchangeSink } from "./store/store.js";
import type { InterchangeMetadata, InterchangeValidator } from "./types.js";

const [QUOTE, BACKSLASH, COMMA, COLON] = [0x22, 0x5c, 0x2c, 0x3a];
const [LBRACE, RBRACE, LBRACKET, RBRACKET] = [0x7b, 0x7d, 0x5b, 0x5d];
const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09; // RFC 8259 §2

/** Positional reads through a window of the file. */
class Bytes {
  private mem = Buffer.allocUnsafe(0);
  private buf = this.mem;
  private base = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly window: number,
  ) {}

  /** Make [pos, pos + n) (clipped to the file) present in the window; returns the window offset of pos. */
  private load(pos: number, n: number): number {
    if (pos >= this.base && Math.min(pos + n, this.size) <= this.base + this.buf.length) return pos - this.base;
    const len = Math.min(Math.max(n, this.window), this.size - pos);
    if (this.mem.length < len) this.mem = Buffer.allocUnsafe(len); // at most the largest entry
    for (let got = 0; got < len; ) {
      let r: number;
      try {
        r = fs.readSync(this.fd, this.mem, got, len - got, pos + got);
      } catch (e) {
        throw new VigilError("bad_request", "FILE_UNREADABLE", `reading the interchange file failed: ${(e as Error).message}`);
      }
      if (r === 0) throw new VigilError("bad_request", "FILE_UNREADABLE", "the interchange file changed while it was read");
      got += r;
    }
    this.buf = this.mem.subarray(0, len);
    this.base = pos;
    return 0;
  }

  /** The byte at pos, or -1 past the end. */
  at(pos: number): number {
    if (pos >= this.size) return -1;
    const off = this.load(pos, 1); // (load may replace this.buf)
    return this.buf[off];
  }

  /** The position of the next `byte` at or after pos (a raw byte search), or -1. */
  find(byte: number, pos: number): number {
    while (pos < this.size) {
      const off = this.load(pos, 1);
      const i = this.buf.indexOf(byte, off);
      if (i >= 0) return this.base + i;
      pos = this.base + this.buf.length;
    }
    return -1;
  }

  text(start: number, end: number): string {
    const off = this.load(start, end - start);
    return this.buf.toString("utf8", off, off + (end - start));
  }
}

/** Where an interchange file's parts lie (byte offsets, end exclusive). */
interface Layout {
  metadata: [number, number] | null;
  entries: [number, number][] | null;
}

class Scanner {
  constructor(
    private readonly b: Bytes,
    private readonly file: string,
  ) {}

  fail(pos: number, what: string): never {
    throw new VigilError("bad_request", "INVALID_JSON", `${this.file} is not JSON: ${what} at byte ${pos}`);
  }

  space(pos: number): number {
    while (isSpace(this.b.at(pos))) pos++;
    return pos;
  }

  expect(pos: number, byte: number): number {
    if (this.b.at(pos) !== byte) this.fail(pos, `expected '${String.fromCharCode(byte)}'`);
    return pos + 1;
  }

  /** The end of the string starting at pos (its opening quote). */
  string(pos: number): number {
    let i = pos + 1;
    for (;;) {
      const q = this.b.find(QUOTE, i);
      if (q < 0) this.fail(pos, "unterminated string");
      let backslashes = 0;
      while (this.b.at(q - 1 - backslashes) === BACKSLASH) backslashes++;
      if (backslashes % 2 === 0) return q + 1;
      i = q + 1;
    }
  }

  /** The end of the value starting at pos. Only its extent is found here: JSON.parse checks its content. */
  value(pos: number): number {
    const first = this.b.at(pos);
    if (first === QUOTE) return this.string(pos);
    if (first !== LBRACE && first !== LBRACKET) {
      let i = pos;
      for (let c = this.b.at(i); c !== -1 && c !== COMMA && c !== RBRACE && c !== RBRACKET && !isSpace(c); c = this.b.at(++i));
      if (i === pos) this.fail(pos, "expected a value");
      return i;
    }
    let depth = 0;
    for (let i = pos; ; ) {
      const c = this.b.at(i);
      if (c === -1) this.fail(pos, "unterminated object or array");
      if (c === QUOTE) {
        i = this.string(i);
        continue;
      }
      if (c === LBRACE || c === LBRACKET) depth++;
      else if (c === RBRACE || c === RBRACKET) {
        if (--depth === 0) return i + 1;
      }
      i++;
    }
  }

  /** `[ value, … ]` starting at pos: the extent of each element; returns the position after `]`. */
  array(pos: number, out: [number, number][]): number {
    let i = this.space(this.expect(pos, LBRACKET));
    if (this.b.at(i) === RBRACKET) return i + 1;
    for (;;) {
      const end = this.value(i);
      out.push([i, end]);
      i = this.space(end);
      const c = this.b.at(i);
      if (c === RBRACKET) return i + 1;
      if (c !== COMMA) this.fail(i, "expected ',' or ']'");
      i = this.space(i + 1);
    }
  }

  /** The whole file: one object whose `metadata` and `data` are noted (a repeated key: the last one counts, as in JSON.parse). */
  document(): Layout {
    const layout: Layout = { metadata: null, entries: null };
    let i = this.space(0);
    if (this.b.at(i) !== LBRACE && i < this.b.size) {
      // JSON, but not an object (say, an array): the same answer as for a parsed document.
      const end = this.value(i);
      try {
        JSON.parse(this.b.text(i, end));
      } catch (e) {
        this.fail(i, (e as Error).message);
      }
      if (this.space(end) < this.b.size) this.fail(this.space(end), "unexpected data after the document");
      invalidInterchange("$", "expected an object");
    }
    i = this.space(this.expect(i, LBRACE));
    if (this.b.at(i) !== RBRACE) {
      for (;;) {
        if (this.b.at(i) !== QUOTE) this.fail(i, "expected a property name");
        const keyEnd = this.string(i);
        let key = "";
        try {
          key = JSON.parse(this.b.text(i, keyEnd)) as string;
        } catch (e) {
          this.fail(i, (e as Error).message); // a malformed escape in a property name
        }
        i = this.space(this.expect(this.space(keyEnd), COLON));
        if (key === "data" && this.b.at(i) === LBRACKET) {
          layout.entries = [];
          i = this.array(i, layout.entries);
        } else {
          const end = this.value(i);
          // Every other value is small (metadata, or something this format does not define): check it whole.
          try {
            JSON.parse(this.b.text(i, end));
          } catch (e) {
            this.fail(i, (e as Error).message);
          }
          if (key === "metadata") layout.metadata = [i, end];
          else if (key === "data") layout.entries = null; // not an array: reported below
          i = end;
        }
        i = this.space(i);
        const c = this.b.at(i);
        if (c === RBRACE) break;
        if (c !== COMMA) this.fail(i, "expected ',' or '}'");
        i = this.space(i + 1);
      }
    }
    i = this.space(i + 1);
    if (i < this.b.size) this.fail(i, "unexpected data after the document");
    return layout;
  }
}

/**
 * Open an interchange file: its structure and metadata are checked now (VigilError bad_request
 * FILE_UNREADABLE, INVALID_JSON, INVALID_INTERCHANGE, INTERCHANGE_VERSION_UNSUPPORTED), its entries as
 * they are read. Call close() when done. `windowBytes`: how much is read at once.
 */
export function openInterchangeFile(file: string, windowBytes = 1 << 20): InterchangeSource & { close(): void } {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw new VigilError("bad_request", "FILE_UNREADABLE", `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const bytes = new Bytes(fd, fs.fstatSync(fd).size, Math.max(1, windowBytes));
    const scanner = new Scanner(bytes, file);
    const layout = scanner.document();
    const parse = (range: [number, number]): unknown => {
      try {
        return JSON.parse(bytes.text(range[0], range[1]));
      } catch (e) {
        return scanner.fail(range[0], (e as Error).message);
      }
    };
    const metadata: InterchangeMetadata = parseInterchangeMetadata(layout.metadata ? parse(layout.metadata) : undefined);
    if (layout.entries === null) invalidInterchange("data", "expected an array");
    const entries = layout.entries as [number, number][];
    return {
      metadata,
      *entries(): Generator<InterchangeValidator> {
        for (let i = 0; i < entries.length; i++) yield parseInterchangeValidator(parse(entries[i]), `data[${i}]`);
      },
      close: () => fs.closeSync(fd),
    };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Writes an export to a file one validator entry at a time, laid out exactly as
 * `JSON.stringify(doc, null, 2)` would (each entry checked as serializeInterchange checks a document).
 * It goes to a temporary file beside `file`, which replaces `file` only once complete and synced.
 */
export class InterchangeFileWriter implements InterchangeSink {
  private readonly tmp: string;
  private fd: number;
  private parts: string[] = [];
  private buffered = 0;
  private entries = 0;
  private started = false;
  /** Counts, for the caller's report. */
  readonly written = { validators: 0, blocks: 0, attestations: 0 };

  constructor(private readonly file: string) {
    this.tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    try {
      this.fd = fs.openSync(this.tmp, "w");
    } catch (e) {
      throw new VigilError("bad_request", "FILE_UNWRITABLE", `cannot write ${file}: ${(e as Error).message}`);
    }
  }

  private push(text: string): void {
    this.parts.push(text);
    this.buffered += text.length;
    if (this.buffered >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    fs.writeSync(this.fd, this.parts.join(""));
    this.parts = [];
    this.buffered = 0;
  }

  start(metadata: InterchangeMetadata): void {
    const m = checked(() => parseInterchangeMetadata(metadata));
    this.push(`{\n  "metadata": ${JSON.stringify(m, null, 2).replace(/\n/g, "\n  ")},\n  "data": [`);
    this.started = true;
  }

  entry(v: InterchangeValidator): void {
    const e = checked(() => parseInterchangeValidator(v, `data[${this.entries}]`));
    this.push(`${this.entries++ === 0 ? "" : ","}\n    ${JSON.stringify(e, null, 2).replace(/\n/g, "\n    ")}`);
    this.written.validators++;
    this.written.blocks += e.signed_blocks.length;
    this.written.attestations += e.signed_attestations.length;
  }

  /** Complete the document, sync it and move it into place. */
  finish(): void {
    if (!this.started) throw new VigilError("internal", "INTERNAL_ERROR", "the export had no metadata");
    this.push(`${this.entries === 0 ? "]" : "\n  ]"}\n}\n`);
    this.flush();
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
    fs.renameSync(this.tmp, this.file);
    fsyncDirSync(path.dirname(this.file));
  }

  /** Give up: remove the temporary file (the target is untouched). */
  abort(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    fs.rmSync(this.tmp, { force: true });
  }
}

/** A record from the database that fails the format's checks is a bug: refuse to write it. */
function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof VigilError) throw new VigilError("internal", "INVALID_INTERCHANGE", `refusing to serialise: ${e.message}`);
    throw e;
  }
}
