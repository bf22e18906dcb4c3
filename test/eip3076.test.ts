/**
 * The EIP-3076 interchange conformance suite (eth-clients/slashing-protection-interchange-tests v5.3.0),
 * run against every store engine — a fresh SQLite database, and a fresh PostgreSQL schema (test/helpers/pg.ts),
 * per file — with the complete-history expectations (`should_succeed_complete`).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { VigilError } from "../src/errors.js";
import { hexToBytes, parseInterchange, serializeInterchange } from "../src/slashing/interchange.js";
import { openSqliteStore } from "../src/slashing/store/sqlite.js";
import type { SlashingStore } from "../src/slashing/store/store.js";
import type { Decision, Interchange } from "../src/slashing/types.js";
import { conformanceDir } from "./helpers/paths.js";
import { PgScratch } from "./helpers/pg.js";

const suiteDir = path.join(conformanceDir, "eip3076", "tests", "generated");
const schema = JSON.parse(fs.readFileSync(path.join(conformanceDir, "eip3076", "schema.json"), "utf8")) as JsonSchema;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-eip3076-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Attempt {
  pubkey: string;
  signing_root?: string;
  should_succeed: boolean;
  should_succeed_complete: boolean;
}
interface Step {
  should_succeed: boolean;
  contains_slashable_data: boolean;
  interchange: unknown;
  blocks: (Attempt & { slot: string })[];
  attestations: (Attempt & { source_epoch: string; target_epoch: string })[];
}
interface Case {
  name: string;
  genesis_validators_root: string;
  steps: Step[];
}

let dbCount = 0;
const pgScratch = new PgScratch("eip3076");
after(() => pgScratch.cleanup());

/** The engines the suite runs against; each gives a fresh, empty store per call. */
const engines: { name: string; freshStore: () => Promise<SlashingStore> }[] = [
  { name: "sqlite", freshStore: async () => openSqliteStore(path.join(tmp, `db-${++dbCount}`, "slashing.sqlite")) },
  { name: "postgres", freshStore: () => pgScratch.open() },
];
const rootOf = (hex: string | undefined): Uint8Array | null => (hex === undefined ? null : hexToBytes(hex));

/**
 * The one place Vigil is deliberately stricter than the suite: the suite's generator treats two all-zero
 * signing roots as the same message (a "repeat"), but SOURCES.md and Vigil treat an all-zero root as
 * unknown, which never proves two messages identical. Such a refusal (a false positive, never a slashing
 * risk) is recorded here instead of failing, and the list is pinned by a test below.
 */
const ZERO_ROOT = "0x" + "0".repeat(64);
function isUnknownRootRepeat(d: Decision, attempt: Attempt): boolean {
  return (
    attempt.should_succeed_complete &&
    !attempt.should_succeed && // the refusal is still what the suite expects of a minimal signer
    !d.allowed &&
    (d.rule === "DOUBLE_BLOCK_PROPOSAL" || d.rule === "DOUBLE_VOTE") &&
    (attempt.signing_root === undefined || attempt.signing_root === ZERO_ROOT)
  );
}

const files = fs.readdirSync(suiteDir).filter((f) => f.endsWith(".json")).sort();
const cases = files.map((file) => ({ file, tc: JSON.parse(fs.readFileSync(path.join(suiteDir, file), "utf8")) as Case }));

test("the suite is complete (38 files)", () => {
  assert.equal(files.length, 38);
});

for (const engine of engines) {
  describe(`EIP-3076 suite on ${engine.name}`, () => runSuite(engine.freshStore));
}

/** Register the whole suite (one test per file, then the pinned deviations) against stores from `freshStore`. */
function runSuite(freshStore: () => Promise<SlashingStore>): void {
  const deviations: string[] = [];
  /** Steps whose slashable import we refused (allowed by the suite, but Vigil should import them all). */
  const skippedSlashableImports: string[] = [];
  for (const { file, tc } of cases) {
    test(`EIP-3076 ${tc.name}`, async () => {
      const store = await freshStore();
      try {
        await store.bindGenesisValidatorsRoot(hexToBytes(tc.genesis_validators_root));
        for (const [i, step] of tc.steps.entries()) {
          const where = `${file} step ${i}`;
          let imported = true;
          try {
            await store.importInterchange(step.interchange as Interchange);
          } catch (e) {
            assert.ok(e instanceof VigilError && e.kind === "bad_request", `${where}: import threw ${String(e)}`);
            imported = false;
          }
          if (!step.should_succeed) {
            assert.equal(imported, false, `${where}: import must fail`);
            continue;
          }
          if (!imported) {
            // Only a slashable interchange may be rejected; then this step's and all later checks are skipped.
            assert.ok(step.contains_slashable_data, `${where}: import must succeed`);
            skippedSlashableImports.push(where);
            return;
          }
          for (const [j, b] of step.blocks.entries()) {
            const d = await store.checkAndRecordBlock(b.pubkey, Number(b.slot), rootOf(b.signing_root));
            if (isUnknownRootRepeat(d, b)) deviations.push(`${where} block ${j}`);
            else assert.equal(d.allowed, b.should_succeed_complete, `${where} block ${j} (slot ${b.slot}): ${JSON.stringify(d)}`);
          }
          for (const [j, a] of step.attestations.entries()) {
            const d = await store.checkAndRecordAttestation(a.pubkey, Number(a.source_epoch), Number(a.target_epoch), rootOf(a.signing_root));
            const what = `${a.source_epoch}→${a.target_epoch}`;
            if (isUnknownRootRepeat(d, a)) deviations.push(`${where} attestation ${j}`);
            else assert.equal(d.allowed, a.should_succeed_complete, `${where} attestation ${j} (${what}): ${JSON.stringify(d)}`);
          }
        }
        await checkExportRoundTrip(store, await freshStore(), file);
      } finally {
        await store.close();
      }
    });
  }

  test("only known deviation: a second signing with an unknown (all-zero) root is refused", () => {
    assert.deepEqual(deviations, ["multiple_interchanges_multiple_validators_repeat_idem.json step 1 block 3"]);
  });

  test("every slashable interchange in the suite was imported (no step skipped)", () => {
    assert.deepEqual(skippedSlashableImports, []);
  });
}

/** Export → schema check → import into a fresh DB (`copy`) → same export; re-import is idempotent. */
async function checkExportRoundTrip(store: SlashingStore, copy: SlashingStore, file: string): Promise<void> {
  const exported = await store.exportInterchange();
  checkSchema(JSON.parse(serializeInterchange(exported)), schema, "$");
  checkPatterns(exported);
  assert.deepEqual(parseInterchange(exported), exported, `${file}: export is already normalised`);
  try {
    const first = await copy.importInterchange(exported);
    assert.equal(first.blocksSkipped + first.attestationsSkipped, 0, `${file}: nothing skipped on first import`);
    assert.deepEqual(await copy.exportInterchange(), exported, `${file}: round trip`);
    const again = await copy.importInterchange(exported);
    assert.deepEqual(again, {
      validators: first.validators,
      validatorsAdded: 0,
      blocksImported: 0,
      blocksSkipped: first.blocksImported,
      attestationsImported: 0,
      attestationsSkipped: first.attestationsImported,
    });
    assert.deepEqual(await copy.exportInterchange(), exported, `${file}: re-import idempotent`);
    // Re-importing into the original store changes nothing either.
    const self = await store.importInterchange(exported);
    assert.equal(self.blocksImported + self.attestationsImported + self.validatorsAdded, 0, `${file}: self re-import`);
  } finally {
    await copy.close();
  }
}

/** The subset of JSON Schema that the EIP's schema.json uses: type, properties, required, items (tuple form = every item). */
interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema | JsonSchema[];
}

function checkSchema(v: unknown, s: JsonSchema, at: string): void {
  const type = Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
  if (s.type !== undefined) assert.equal(type, s.type, `${at}: type`);
  if (type === "object") {
    const o = v as Record<string, unknown>;
    for (const k of s.required ?? []) assert.ok(k in o, `${at}: missing ${k}`);
    for (const [k, sub] of Object.entries(s.properties ?? {})) if (k in o) checkSchema(o[k], sub, `${at}.${k}`);
  }
  if (type === "array" && s.items !== undefined) {
    const item = Array.isArray(s.items) ? s.items[0] : s.items;
    (v as unknown[]).forEach((x, i) => checkSchema(x, item, `${at}[${i}]`));
  }
}

/** The EIP's textual constraints that schema.json leaves out. */
function checkPatterns(doc: Interchange): void {
  const dec = /^(0|[1-9][0-9]*)$/;
  const root = /^0x[0-9a-f]{64}$/;
  assert.equal(doc.metadata.interchange_format_version, "5");
  assert.match(doc.metadata.genesis_validators_root, root);
  const pubkeys = new Set<string>();
  for (const v of doc.data) {
    assert.match(v.pubkey, /^0x[0-9a-f]{96}$/);
    assert.ok(!pubkeys.has(v.pubkey), "one entry per pubkey");
    pubkeys.add(v.pubkey);
    for (const b of v.signed_blocks) {
      assert.match(b.slot, dec);
      if (b.signing_root !== undefined) assert.match(b.signing_root, root);
      assert.notEqual(b.signing_root, "0x" + "0".repeat(64), "unknown roots are omitted");
    }
    for (const a of v.signed_attestations) {
      assert.match(a.source_epoch, dec);
      assert.match(a.target_epoch, dec);
      if (a.signing_root !== undefined) assert.match(a.signing_root, root);
      assert.notEqual(a.signing_root, "0x" + "0".repeat(64), "unknown roots are omitted");
    }
  }
}
