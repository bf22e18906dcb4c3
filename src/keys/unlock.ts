/**
 * Where the key store passphrase comes from (`--unlock <source>`):
 *
 *   prompt       ask on the terminal, without echo (stdin must be a TTY)
 *   stdin        the first line of standard input (for pipes: `pass show vigil | vigil …`)
 *   file:<path>  the whole file minus one trailing newline; refused if group or others may read
 *                it (mode & 0o077), unless VIGIL_ALLOW_INSECURE_PASSPHRASE_FILE=1
 *   env:<VAR>    the variable's value (set and non-empty); it is then deleted from the
 *                process environment so that later child processes do not inherit it (the
 *                process's initial environment, /proc/<pid>/environ, keeps it: prefer file: or stdin)
 *
 * An empty passphrase is refused from every source.
 */
import fsp from "node:fs/promises";
import readline from "node:readline";
import { Writable } from "node:stream";
import { VigilError } from "../errors.js";

export const INSECURE_FILE_ENV = "VIGIL_ALLOW_INSECURE_PASSPHRASE_FILE";
export const UNLOCK_SOURCES = "prompt, stdin, file:<path> or env:<VAR>";
const MAX_PASSPHRASE_BYTES = 64 * 1024;

export interface ReadPassphraseOptions {
  /** Prompt text (prompt source); default "Key store passphrase: ". */
  prompt?: string;
  /** Ask twice and require the same answer (prompt source only: for a new passphrase). */
  confirm?: boolean;
  stdin?: NodeJS.ReadableStream;
  stderr?: NodeJS.WritableStream;
}

const bad = (code: string, message: string): VigilError => new VigilError("bad_request", code, message);

function nonEmpty(passphrase: string, from: string): string {
  if (passphrase.length === 0) throw bad("EMPTY_PASSPHRASE", `the passphrase from ${from} is empty`);
  return passphrase;
}

export async function readPassphrase(source: string, opts: ReadPassphraseOptions = {}): Promise<string> {
  if (typeof source !== "string") source = String(source);
  if (source === "prompt") return nonEmpty(await fromPrompt(opts), "the prompt");
  if (source === "stdin") return nonEmpty(await fromStdin(opts.stdin ?? process.stdin), "stdin");
  if (source.startsWith("file:") && source.length > "file:".length) {
    const file = source.slice("file:".length);
    return nonEmpty(await fromFile(file), `file ${file}`);
  }
  if (source.startsWith("env:")) {
    const name = source.slice("env:".length);
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return fromEnv(name);
  }
  throw bad("INVALID_UNLOCK_SOURCE", `invalid unlock source ${JSON.stringify(source)}: use ${UNLOCK_SOURCES}`);
}

// ---------------------------------------------------------------- env:<VAR>

function fromEnv(name: string): string {
  const value = process.env[name];
  delete process.env[name];
  if (value === undefined || value === "") {
    throw bad("PASSPHRASE_ENV_UNSET", `environment variable ${name} (unlock source env:${name}) is not set or is empty`);
  }
  return value;
}

// ---------------------------------------------------------------- file:<path>

async function fromFile(file: string): Promise<string> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, "r");
  } catch (e) {
    throw bad("PASSPHRASE_FILE_UNREADABLE", `cannot read passphrase file ${file}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat(); // of the file we read, not of whatever the path names later
    if (st.isDirectory()) throw bad("PASSPHRASE_FILE_UNREADABLE", `passphrase file ${file} is a directory`);
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0 && process.env[INSECURE_FILE_ENV] !== "1") {
      const mode = (st.mode & 0o777).toString(8).padStart(3, "0");
      throw bad(
        "INSECURE_PASSPHRASE_FILE",
        `passphrase file ${file} is accessible by group or others (mode ${mode}): run \`chmod 600 ${file}\`, ` +
          `or set ${INSECURE_FILE_ENV}=1 to accept it anyway`,
      );
    }
    if (st.isFile() && st.size > MAX_PASSPHRASE_BYTES) throw bad("PASSPHRASE_TOO_LONG", `passphrase file ${file} is larger than ${MAX_PASSPHRASE_BYTES} bytes`);
    let text: string;
    try {
      text = await fh.readFile("utf8");
    } catch (e) {
      throw bad("PASSPHRASE_FILE_UNREADABLE", `cannot read passphrase file ${file}: ${(e as Error).message}`);
    }
    if (text.endsWith("\r\n")) return text.slice(0, -2);
    if (text.endsWith("\n")) return text.slice(0, -1);
    return text;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- stdin

/** The first line of the stream (without "\n" / "\r\n"), or everything if it has no newline. */
function fromStdin(input: NodeJS.ReadableStream): Promise<string> {
  if ((input as { isTTY?: boolean }).isTTY) {
    return Promise.reject(
      bad("STDIN_IS_A_TERMINAL", "unlock source stdin reads a pipe or a file, and stdin is a terminal (it would echo): use --unlock prompt"),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      input.removeListener("data", onData);
      input.removeListener("end", onEnd);
      input.removeListener("error", onError);
      input.pause();
    };
    const finish = (upTo: number | null): void => {
      cleanup();
      const all = Buffer.concat(chunks);
      let line = (upTo === null ? all : all.subarray(0, upTo)).toString("utf8");
      all.fill(0);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      resolve(line);
    };
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
      const nl = b.indexOf(0x0a);
      chunks.push(b);
      if (nl >= 0) return finish(size + nl);
      size += b.length;
      if (size > MAX_PASSPHRASE_BYTES) {
        cleanup();
        reject(bad("PASSPHRASE_TOO_LONG", `the passphrase line on stdin is longer than ${MAX_PASSPHRASE_BYTES} bytes`));
      }
    };
    const onEnd = (): void => finish(null);
    const onError = (e: Error): void => {
      cleanup();
      reject(bad("PASSPHRASE_STDIN_ERROR", `cannot read the passphrase from stdin: ${e.message}`));
    };
    input.on("data", onData);
    input.once("end", onEnd);
    input.once("error", onError);
    input.resume();
  });
}

// ---------------------------------------------------------------- prompt

async function fromPrompt(opts: ReadPassphraseOptions): Promise<string> {
  const input = opts.stdin ?? process.stdin;
  const output = opts.stderr ?? process.stderr;
  if (!(input as { isTTY?: boolean }).isTTY) {
    throw bad(
      "PROMPT_NEEDS_TTY",
      "cannot prompt for the passphrase: stdin is not a terminal. Use --unlock stdin (pipe it in), " +
        "--unlock file:<path> (a file of mode 0600) or --unlock env:<VAR>",
    );
  }
  // readline echoes what is typed through `output`: give it a sink, and write prompts ourselves.
  const muted = new Writable({ write: (_chunk, _enc, cb) => cb() });
  const rl = readline.createInterface({ input, output: muted, terminal: true, historySize: 0 });
  const lines: string[] = [];
  let waiter: { resolve: (l: string) => void; reject: (e: Error) => void } | null = null;
  let ended: VigilError | null = null;
  const fail = (e: VigilError): void => {
    ended ??= e;
    if (waiter) waiter.reject(e);
    waiter = null;
  };
  rl.on("line", (line: string) => {
    if (waiter) {
      waiter.resolve(line);
      waiter = null;
    } else lines.push(line);
  });
  rl.on("SIGINT", () => {
    output.write("\n");
    fail(bad("PASSPHRASE_CANCELLED", "passphrase entry cancelled"));
    rl.close();
  });
  rl.on("close", () => fail(bad("PASSPHRASE_CANCELLED", "no passphrase entered (end of input)")));
  const ask = (question: string): Promise<string> => {
    output.write(question);
    const line = lines.shift();
    if (line !== undefined) {
      output.write("\n");
      return Promise.resolve(line);
    }
    if (ended) return Promise.reject(ended);
    return new Promise<string>((resolve, reject) => {
      waiter = {
        resolve: (l) => {
          output.write("\n");
          resolve(l);
        },
        reject,
      };
    });
  };
  try {
    const first = await ask(opts.prompt ?? "Key store passphrase: ");
    if (opts.confirm) {
      const again = await ask("Repeat the passphrase: ");
      if (again !== first) throw bad("PASSPHRASE_MISMATCH", "the two passphrases differ");
    }
    return first;
  } finally {
    rl.close();
  }
}
