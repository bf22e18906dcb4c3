/**
 * Interchange files read entry by entry (src/slashing/interchange-file.ts) must mean exactly what
 * JSON.parse + parseInterchange of the whole text means: the same document when valid, a refusal when
 * not — with any read window size (windows of a few bytes cut every token). Imports from such a file
 * are all or nothing, in both engines.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { VigilError } from "../src/errors.js";
import { InterchangeFileWriter, openInterchangeFile } from "../src/slashing/interchange-file.js";
import { parseInterchange, serializeInterchange } from "../src/slashing/interchange.js";
import { openSqliteStore } from "../src/slashing/store/sqlite.js";
import type { SlashingStore } from "../src/slashing/store/store.js";
import type { Interchange } from "../src/slashing/types.js";
import { conformanceDir } from "./helpers/paths.js";
import { PgScratch } from "./helpers/pg.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-interchange-file-"));
const pgScratch = new PgScratch("icfile");
after(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  await pgScratch.cleanup();
});

let files = 0;
function write(text: string): string {
  const file = path.join(tmp, `f${++files}.json`);
  fs.writeFileSync(file, text);
  return file;
}

type Outcome = { ok: true; doc: Interchange } | { ok: false; code: string; notJson: boolean };

function reference(text: string): Outcome {
  try {
    return { ok: true, doc: parseInterchange(text) };
  } catch (e) {
    assert.ok(e instanceof VigilError && e.kind === "bad_request", `reference: ${(e as Error).message}`);
    return { ok: false, code: e.code, notJson: e.message.includes("$: not JSON") };
  }
}

function readFile(file: string, window?: number): Outcome {
  try {
    const source = openInterchangeFile(file, window);
    try {
      return { ok: true, doc: { metadata: source.metadata, data: [...source.entries()] } };
    } finally {
      source.close();
    }
  } catch (e) {
    assert.ok(e instanceof VigilError && e.kind === "bad_request", `file reader: ${(e as Error).stack}`);
    return { ok: false, code: e.code, notJson: e.code === "INVALID_JSON" };
  }
}

/** The reader agrees with the reference on `text`, for every window size. */
function agrees(text: string, what: string): Outcome {
  const want = reference(text);
  const file = write(text);
  for (const window of [undefined, 1, 2, 7, 64]) {
    const got = readFile(file, window);
    const label = `${what} (window ${window ?? "default"}): ${JSON.stringify(text.length > 300 ? text.slice(0, 300) + "…" : text)}`;
    assert.equal(got.ok, want.ok, label);
    if (got.ok && want.ok) assert.deepEqual(got.doc, want.doc, label);
    else if (!got.ok && !want.ok) {
      // Not JSON at all is INVALID_JSON from the file reader; anything else is the same refusal.
      if (want.notJson) assert.equal(got.code, "INVALID_JSON", label);
      else assert.equal(got.code, want.code, label);
    }
  }
  return want;
}

const suiteDir = path.join(conformanceDir, "eip3076", "tests", "generated");
const suiteDocs: { name: string; value: unknown }[] = fs
  .readdirSync(suiteDir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .flatMap((f) => {
    const c = JSON.parse(fs.readFileSync(path.join(suiteDir, f), "utf8")) as { steps: { interchange: unknown }[] };
    return c.steps.map((s, i) => ({ name: `${f} step ${i}`, value: s.interchange }));
  });

describe("an interchange file read entry by entry means what the whole text means", () => {
  test("every document of the EIP-3076 suite, compact and indented", () => {
    assert.ok(suiteDocs.length >= 38, `suite documents found in ${suiteDir}`);
    let valid = 0;
    for (const { name, value } of suiteDocs) {
      if (agrees(JSON.stringify(value), name).ok) valid++;
      agrees(JSON.stringify(value, null, 2), `${name}, indented`);
    }
    assert.ok(valid >= 30, "most suite documents are valid");
  });

  const meta = `"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x${"04".repeat(32)}"}`;
  const entry = (n: number, extra = ""): string =>
    `{"pubkey":"0x${n.toString(16).padStart(96, "a")}","signed_blocks":[{"slot":"${n}"}],"signed_attestations":[{"source_epoch":"1","target_epoch":"${n + 2}","signing_root":"0x${"0f".repeat(32)}"}]${extra}}`;
  const cases: [string, string, boolean][] = [
    ["data before metadata", `{"data":[${entry(1)},${entry(2)}],${meta}}`, true],
    ["unknown top-level keys with nested values and escaped quotes", `{"x":{"a":["]","}\\"{"]},${meta},"y":"\\\\","data":[${entry(3)}],"z":[1,{"b":null}]}`, true],
    ["a key spelled with an escape", `{${meta},"d\\u0061ta":[${entry(4)}]}`, true],
    ["repeated data: the last one counts", `{${meta},"data":[${entry(5)}],"data":[${entry(6)},${entry(7)}]}`, true],
    ["unknown keys inside entries, strings with braces", `{${meta},"data":[${entry(8, ',"note":"}]{[\\"x"')}]}`, true],
    ["whitespace everywhere", ` \r\n\t{ ${meta.replace(":", " : ")} ,\n"data" : [ ${entry(9)} ,\t${entry(10)} ] }\n\n`, true],
    ["empty data", `{${meta},"data":[]}`, true],
    ["byte order mark", `\ufeff{${meta},"data":[]}`, false],
    ["empty file", "", false],
    ["only whitespace", "  \n", false],
    ["an array at the top", `[{${meta},"data":[]}]`, false],
    ["data is an object", `{${meta},"data":{}}`, false],
    ["no data", `{${meta}}`, false],
    ["no metadata", `{"data":[]}`, false],
    ["trailing garbage", `{${meta},"data":[]} x`, false],
    ["two documents", `{${meta},"data":[]}{}`, false],
    ["trailing comma in data", `{${meta},"data":[${entry(11)},]}`, false],
    ["trailing comma in the object", `{${meta},"data":[],}`, false],
    ["missing comma between entries", `{${meta},"data":[${entry(12)} ${entry(13)}]}`, false],
    ["mismatched brackets in an entry", `{${meta},"data":[${entry(14).slice(0, -1)}]]}`, false],
    ["unterminated string", `{${meta},"data":[{"pubkey":"0x12]}`, false],
    ["a malformed escape in a top-level key", `{${meta},"d\\u00zza":[]}`, false],
    ["a scalar entry", `{${meta},"data":[1]}`, false],
    ["a bare word entry", `{${meta},"data":[tru]}`, false],
    ["an invalid entry after valid ones", `{${meta},"data":[${entry(15)},${entry(16).replace('"slot":"16"', '"slot":16')}]}`, false],
  ];
  for (const [name, text, valid] of cases) {
    test(name, () => assert.equal(agrees(text, name).ok, valid));
  }

  test("600 random one-byte mutations of a document (deleted, inserted, replaced bytes)", () => {
    const base = `{${meta},"data":[${entry(20)},${entry(21, ',"s":"a\\\\\\"b"')}],"extra":{"k":[true,false,null,-1.5e3]}}`;
    assert.ok(reference(base).ok);
    let seed = 3076;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = '{}[],:"\\ 0x\nae-.';
    let refused = 0;
    for (let i = 0; i < 600; i++) {
      const at = rand(base.length);
      const c = alphabet[rand(alphabet.length)];
      const kind = rand(3);
      const text = kind === 0 ? base.slice(0, at) + base.slice(at + 1) : kind === 1 ? base.slice(0, at) + c + base.slice(at) : base.slice(0, at) + c + base.slice(at + 1);
      if (!agrees(text, `mutation ${i}`).ok) refused++;
    }
    assert.ok(refused > 300, `most mutations break the document (${refused} of 600 did)`);
  });

  test("a missing file: FILE_UNREADABLE", () => {
    assert.throws(() => openInterchangeFile(path.join(tmp, "missing.json")), (e: unknown) => e instanceof VigilError && e.code === "FILE_UNREADABLE");
  });
});

const GVR = "0x" + "04".repeat(32);
const pubkey = (n: number): string => "0x" + n.toString(16).padStart(96, "0");
function history(validators: number, from: number): Interchange {
  return {
    metadata: { interchange_format_version: "5", genesis_validators_root: GVR },
    data: Array.from({ length: validators }, (_, v) => ({
      pubkey: pubkey(v + 1),
      signed_blocks: Array.from({ length: 30 }, (_, i) => ({ slot: String(from + i), signing_root: "0x" + (v * 1000 + i + 1).toString(16).padStart(64, "0") })),
      signed_attestations: Array.from({ length: 30 }, (_, i) => ({ source_epoch: String(from + i), target_epoch: String(from + i + 1) })),
    })),
  };
}

const engines: { name: string; open: () => Promise<SlashingStore> }[] = [
  { name: "sqlite", open: async () => openSqliteStore(path.join(fs.mkdtempSync(path.join(tmp, "db-")), "slashing.sqlite")) },
  { name: "postgres", open: () => pgScratch.open() },
];

for (const engine of engines) {
  describe(`import from a file, ${engine.name}`, () => {
    test("the same result as the document in memory; an invalid last entry rolls everything back", async () => {
      const fromFile = await engine.open();
      const fromDoc = await engine.open();
      try {
        // Enough records for several of the PostgreSQL engine's write groups, and a pubkey in two entries.
        const doc = history(400, 10);
        doc.data.push({ ...history(1, 500).data[0] });
        const file = write(JSON.stringify(doc, null, 1));
        const source = openInterchangeFile(file, 4096);
        const summary = await fromFile.importInterchange(source);
        source.close();
        assert.deepEqual(summary, await fromDoc.importInterchange(doc));
        assert.deepEqual(summary, { validators: 400, validatorsAdded: 400, blocksImported: 401 * 30, blocksSkipped: 0, attestationsImported: 401 * 30, attestationsSkipped: 0 });
        assert.deepEqual(await fromFile.exportInterchange(), await fromDoc.exportInterchange());

        // A second file: new records for every validator, then one broken entry at the very end.
        const more = history(400, 100);
        const text = JSON.stringify(more).replace(/\]\}$/, `,{"pubkey":"${pubkey(7)}","signed_blocks":[{"slot":"-1"}],"signed_attestations":[]}]}`);
        const bad = openInterchangeFile(write(text), 4096);
        await assert.rejects(fromFile.importInterchange(bad), (e: unknown) => e instanceof VigilError && e.code === "INVALID_INTERCHANGE" && /data\[400\]\.signed_blocks\[0\]\.slot/.test(e.message));
        bad.close();
        assert.deepEqual(await fromFile.exportInterchange(), await fromDoc.exportInterchange(), "nothing of the refused file was kept");
        // Importing the same file again skips every record.
        const again = openInterchangeFile(file);
        assert.deepEqual(await fromFile.importInterchange(again), { ...summary, validatorsAdded: 0, blocksImported: 0, blocksSkipped: 401 * 30, attestationsImported: 0, attestationsSkipped: 401 * 30 });
        again.close();
      } finally {
        await fromFile.close();
        await fromDoc.close();
      }
    });

    test("export to a file: the text serializeInterchange gives the document, written entry by entry", async () => {
      const store = await engine.open();
      try {
        const dir = fs.mkdtempSync(path.join(tmp, "export-"));
        const target = path.join(dir, "out.json");
        // Not bound yet: refused, and neither the target nor a temporary file is left.
        const early = new InterchangeFileWriter(target);
        await assert.rejects(store.exportInterchangeTo(early), (e: unknown) => e instanceof VigilError && e.code === "GENESIS_VALIDATORS_ROOT_UNSET");
        early.abort();
        assert.deepEqual(fs.readdirSync(dir), []);

        await store.bindGenesisValidatorsRoot(Buffer.from(GVR.slice(2), "hex"));
        const exportTo = async (pubkeys?: string[]): Promise<{ text: string; written: InterchangeFileWriter["written"] }> => {
          const out = new InterchangeFileWriter(target);
          await store.exportInterchangeTo(out, pubkeys);
          out.finish();
          assert.deepEqual(fs.readdirSync(dir), ["out.json"], "only the target is left");
          return { text: fs.readFileSync(target, "utf8"), written: out.written };
        };
        const empty = await exportTo();
        assert.equal(empty.text, serializeInterchange(await store.exportInterchange(), 2) + "\n");
        assert.match(empty.text, /"data": \[\]\n\}\n$/);

        const doc = history(1200, 10); // more validators than the PostgreSQL engine reads per query
        doc.data[5].signed_blocks = [];
        doc.data[6].signed_attestations = [];
        await store.importInterchange(doc);
        const all = await exportTo();
        assert.equal(all.text, serializeInterchange(await store.exportInterchange(), 2) + "\n");
        assert.deepEqual(parseInterchange(all.text), await store.exportInterchange());
        assert.deepEqual(all.written, { validators: 1200, blocks: 1199 * 30, attestations: 1199 * 30 });
        const some = [pubkey(1200), pubkey(3), "0x" + "ee".repeat(48)];
        const part = await exportTo(some);
        assert.equal(part.text, serializeInterchange(await store.exportInterchange(some), 2) + "\n");
        assert.deepEqual(parseInterchange(part.text).data.map((v) => v.pubkey).sort(), [pubkey(3), pubkey(1200)]);

        // An export that fails half-way leaves the earlier file as it was.
        const failing = new InterchangeFileWriter(target);
        let n = 0;
        const sink = { start: failing.start.bind(failing), entry: (v: Parameters<InterchangeFileWriter["entry"]>[0]) => (++n === 700 ? failing.entry({ ...v, pubkey: "0x12" }) : failing.entry(v)) };
        await assert.rejects(store.exportInterchangeTo(sink), (e: unknown) => e instanceof VigilError && e.kind === "internal" && /refusing to serialise/.test(e.message));
        failing.abort();
        assert.deepEqual(fs.readdirSync(dir), ["out.json"]);
        assert.equal(fs.readFileSync(target, "utf8"), part.text);
      } finally {
        await store.close();
      }
    });

    test("a refused file leaves an unbound database unbound", async () => {
      const store = await engine.open();
      try {
        const text = JSON.stringify(history(2, 1)).replace(/\]\}$/, `,{"pubkey":"0x12","signed_blocks":[],"signed_attestations":[]}]}`);
        const bad = openInterchangeFile(write(text));
        await assert.rejects(store.importInterchange(bad), (e: unknown) => e instanceof VigilError && e.code === "INVALID_INTERCHANGE");
        bad.close();
        assert.equal(await store.getGenesisValidatorsRoot(), null);
      } finally {
        await store.close();
      }
    });
  });
}
