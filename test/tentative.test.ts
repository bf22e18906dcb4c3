/**
 * Tentative decisions (SQLite store): told before the COMMIT, identical to the durable one; a failed
 * commit rejects them all and records nothing. And through the whole vault: a signature is returned
 * only after the decision is durable, never when the commit fails.
 */
import "./helpers/preset-minimal.js";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { VigilError } from "../src/errors.js";
import { PublicKey, Signature, verify } from "@chainsafe/blst";
import { openSqliteStore, type SqliteSlashingStore } from "../src/slashing/store/sqlite.js";
import type { Decision } from "../src/slashing/types.js";
import { hexBytes, interopKeys, lodestarSamples } from "./helpers/keys.js";
import { post, startTestServer } from "./helpers/server.js";
import { pubkey, root } from "./helpers/values.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-tentative-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dbFile = (): string => path.join(tmp, `case-${++n}`, "slashing.sqlite");

function isVigilError(kind: string, code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, String(e));
    assert.equal(e.kind, kind);
    assert.equal(e.code, code);
    return true;
  };
}

test("tentative decisions: told before the commit, identical to the durable one; a failed commit rejects them all and records nothing", async () => {
  const file = dbFile();
  const told: Decision[] = [];
  let resolvedEarly = false;
  const ok = openSqliteStore(file);
  await ok.bindGenesisValidatorsRoot(root(7));
  const p = ok.checkAndRecordAttestation(pubkey(1), 1, 2, root(1), (d) => told.push(d));
  void p.then(() => (resolvedEarly = told.length === 0));
  const d = await p;
  assert.equal(resolvedEarly, false);
  assert.deepEqual(told, [d]);
  await ok.close();

  // The same database behind a COMMIT that fails (fault injected just before it): the tentative
  // "allowed" was told, yet the promise rejects 'unavailable' and the database has no record of it.
  let tentative: Decision | null = null;
  const failing = openSqliteStore(file);
  failing.beforeCommit = () => {
    throw new Error("injected: the disk is full");
  };
  await assert.rejects(
    failing.checkAndRecordAttestation(pubkey(1), 2, 3, root(2), (t) => (tentative = t)),
    isVigilError("unavailable", "SLASHING_DB_ERROR"),
  );
  assert.equal((tentative as Decision | null)?.allowed, true);
  await failing.close();
  const again = openSqliteStore(file);
  const doc = await again.exportInterchange();
  await again.close();
  assert.deepEqual(
    doc.data[0].signed_attestations.map((a) => a.target_epoch),
    ["2"],
  );
});


test("through the vault: a commit that fails after the decision was told gives 503 and no signature; the audit log says so", async () => {
  const keys = interopKeys();
  const pk0 = keys[0].pubkey;
  const body = structuredClone(lodestarSamples().find((s) => s.file === "ATTESTATION.json")!.body);
  const server = await startTestServer("minimal", [keys[0].secret]);
  try {
    server.vault.useSigningThreads(2); // as the vault process does
    const store = (server.vault as unknown as { store: SqliteSlashingStore }).store;
    let commits = 0;
    store.beforeCommit = () => {
      if (++commits === 1) throw new Error("injected: the disk is full");
    };
    const failed = await post(`${server.url}/api/v1/eth2/sign/${pk0}`, body);
    assert.equal(failed.status, 503, failed.text);
    assert.equal(failed.json.code, "SLASHING_DB_ERROR");
    assert.ok(!("signature" in failed.json));
    // Nothing was recorded, so the same attestation is no double vote: the next commit works and it is signed.
    const ok = await post(`${server.url}/api/v1/eth2/sign/${pk0}`, body);
    assert.equal(ok.status, 200, ok.text);
    assert.ok(verify(hexBytes(body.signingRoot as string), PublicKey.fromBytes(hexBytes(pk0)), Signature.fromBytes(hexBytes(ok.json.signature))));
    const doc = await store.exportInterchange();
    assert.equal(doc.data[0].signed_attestations.length, 1);
    await server.vault.authority.audit.close();
    const audit = fs.readFileSync(path.join(server.dataDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(
      audit.map((e) => [e.outcome, e.code ?? null]),
      [
        ["allowed", null],
        ["refused", "SLASHING_DB_ERROR"],
        ["allowed", null],
      ],
    );
  } finally {
    await server.close();
  }
});
