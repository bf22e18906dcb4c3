/**
 * Crash durability of slashing protection, against the real `vigil start` process:
 * a signature a client received is always in the protection history, whatever moment the
 * process is SIGKILLed at; and after a restart the recorded history still refuses conflicting
 * attestations and blocks (412) while re-signing identical messages (200).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { PublicKey, Signature, verify } from "@chainsafe/blst";
import { exited, killVigils, runVigil, spawnVigil, stopVigil, writeKeystores, type VigilProcess } from "./helpers/cli.js";
import { interopKeys, sampleRequestsDir } from "./helpers/keys.js";
import { post, tempDir } from "./helpers/server.js";

const ROUNDS = 3;
const STREAM = 300; // attestation requests per round (after one warm-up per key)
const CONCURRENCY = 8;

const tmp = tempDir("vigil-durability-");
const dataDir = path.join(tmp, "data");
let keystores: { dir: string; passwordFile: string; pubkeys: string[] };

before(async () => {
  keystores = await writeKeystores(path.join(tmp, "keystores"), interopKeys().slice(0, 3).map((k) => k.secret), "durability test password");
});
after(async () => {
  await killVigils();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const start = (): Promise<VigilProcess> =>
  spawnVigil(["--network", "minimal", "--keystores", keystores.dir, "--password-file", keystores.passwordFile, "--data-dir", dataDir, "--log-level", "warn"]);

const sample = (file: string): any => JSON.parse(fs.readFileSync(path.join(sampleRequestsDir, file), "utf8"));
const ATTESTATION = sample("ATTESTATION.json");
const BLOCK = sample("BLOCK_V2.BELLATRIX.json");

/** The Lodestar ATTESTATION sample at (source, target), without its signingRoot (Vigil computes it). */
function attestation(source: number, target: number, beaconBlockRoot?: string): unknown {
  const body = structuredClone(ATTESTATION);
  delete body.signingRoot;
  const a = body.attestation;
  a.slot = String(target * 8); // minimal preset: 8 slots per epoch
  a.source.epoch = String(source);
  a.target.epoch = String(target);
  if (beaconBlockRoot) a.beacon_block_root = beaconBlockRoot;
  return body;
}

const signUrl = (url: string, pubkey: string): string => `${url}/api/v1/eth2/sign/${pubkey}`;
const bytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replace(/^0x/, ""), "hex"));
const verifies = (root: string, pubkey: string, signature: string): boolean =>
  verify(bytes(root), PublicKey.fromBytes(bytes(pubkey)), Signature.fromBytes(bytes(signature)));
const randomInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

interface Sent {
  pubkey: string;
  source: number;
  target: number;
}
interface Received extends Sent {
  signature: string;
}

type Exported = Map<string, { attestations: Map<string, string | undefined>; blocks: Map<string, string | undefined> }>;

/** `vigil slashing export` of the data dir, as pubkey → "source:target" / slot → signing root. */
async function exportHistory(): Promise<Exported> {
  const file = path.join(tmp, `export-${Date.now()}-${randomInt(0, 1e9)}.json`);
  const r = await runVigil(["slashing", "export", file, "--data-dir", dataDir]);
  assert.equal(r.code, 0, `export failed: ${r.stderr}`);
  const doc = JSON.parse(fs.readFileSync(file, "utf8"));
  fs.rmSync(file);
  assert.equal(doc.metadata.genesis_validators_root, ATTESTATION.fork_info.genesis_validators_root, "the database pinned the devnet's root");
  const out: Exported = new Map();
  for (const v of doc.data) {
    const e = out.get(v.pubkey) ?? { attestations: new Map(), blocks: new Map() };
    for (const a of v.signed_attestations) e.attestations.set(`${a.source_epoch}:${a.target_epoch}`, a.signing_root);
    for (const b of v.signed_blocks) e.blocks.set(b.slot, b.signing_root);
    out.set(v.pubkey, e);
  }
  return out;
}

/** Every attestation signature a client received, over all rounds. */
const received: Received[] = [];
/** Every attestation request sent (received or not). */
const sentKeys = new Set<string>();
const sentKey = (s: Sent): string => `${s.pubkey}/${s.source}:${s.target}`;

test(`SIGKILL mid-stream, ${ROUNDS} rounds: every signature a client received is in the exported history`, { timeout: 300_000 }, async (t) => {
  for (let round = 0; round < ROUNDS; round++) {
    const started = Date.now();
    const vigil = await start();
    const base = round * 1000; // above everything of earlier rounds: nothing here is slashable
    const requests: Sent[] = [];
    // One warm-up per key, sequentially, sets the low watermarks so the concurrent stream never trips them.
    for (const pubkey of keystores.pubkeys) requests.push({ pubkey, source: base, target: base + 1 });
    for (let j = 1; j <= STREAM / keystores.pubkeys.length; j++) {
      for (const pubkey of keystores.pubkeys) requests.push({ pubkey, source: base + 2 * j, target: base + 2 * j + 1 });
    }

    const roundReceived: Received[] = [];
    let failedAfterKill = 0;
    let killed = false;
    const send = async (req: Sent): Promise<void> => {
      sentKeys.add(sentKey(req));
      let res: Awaited<ReturnType<typeof post>>;
      try {
        res = await post(signUrl(vigil.url, req.pubkey), attestation(req.source, req.target));
      } catch (e) {
        assert.ok(killed, `request failed before the kill: ${(e as Error).message}\n${vigil.output()}`);
        failedAfterKill++;
        return;
      }
      // A response always means the process was alive: anything but 200 is a bug (nothing here conflicts).
      assert.equal(res.status, 200, `${req.source}→${req.target}: ${res.text}`);
      assert.match(res.json?.signature ?? "", /^0x[0-9a-f]{192}$/);
      const r = { ...req, signature: res.json.signature as string };
      roundReceived.push(r);
      received.push(r);
    };

    for (const req of requests.slice(0, keystores.pubkeys.length)) await send(req); // warm-up
    const stream = requests.slice(keystores.pubkeys.length);
    const killAt = randomInt(20, stream.length - 40);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!killed && next < stream.length) {
        const i = next++;
        if (i === killAt) {
          // Kill a few milliseconds later, with requests in flight at every stage.
          setTimeout(() => {
            killed = true;
            vigil.proc.kill("SIGKILL");
          }, randomInt(0, 5));
        }
        await send(stream[i]);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    assert.ok(killed, "the process was killed mid-stream");
    const { signal } = await exited(vigil.proc);
    assert.equal(signal, "SIGKILL");

    const history = await exportHistory();
    let recordedNotReceived = 0;
    for (const r of roundReceived) {
      const atts = history.get(r.pubkey)?.attestations;
      assert.ok(atts && atts.has(`${r.source}:${r.target}`), `received ${r.source}→${r.target} for ${r.pubkey} but it is not in the history`);
      const root = atts.get(`${r.source}:${r.target}`);
      assert.ok(root, `the history records ${r.source}→${r.target} without its signing root`);
      assert.ok(verifies(root, r.pubkey, r.signature), `the recorded signing root of ${r.source}→${r.target} does not verify the received signature`);
    }
    // The history holds nothing that was not asked for.
    for (const [pubkey, v] of history) {
      for (const st of v.attestations.keys()) {
        const [source, target] = st.split(":").map(Number);
        assert.ok(sentKeys.has(sentKey({ pubkey, source, target })), `history has ${st} for ${pubkey}, never requested`);
        if (source >= base && !roundReceived.some((r) => r.pubkey === pubkey && r.source === source)) recordedNotReceived++;
      }
    }
    t.diagnostic(
      `round ${round}: SIGKILL scheduled at stream request ${killAt}/${stream.length}; ${roundReceived.length} signatures received, ` +
        `${failedAfterKill} requests cut off, ${recordedNotReceived} recorded but never answered; ${Date.now() - started} ms`,
    );
    assert.ok(roundReceived.length > keystores.pubkeys.length, "some of the stream was signed before the kill");
  }
});

test("after a restart: conflicting attestations are refused (412), identical ones re-signed (200)", { timeout: 120_000 }, async (t) => {
  assert.ok(received.length > 0, "needs the history of the previous test");
  const vigil = await start();
  t.after(() => stopVigil(vigil.proc));
  const r = received[randomInt(0, received.length - 1)];

  // Same target, different beacon_block_root: a double vote.
  const conflicting = await post(signUrl(vigil.url, r.pubkey), attestation(r.source, r.target, "0x" + "ab".repeat(32)));
  assert.equal(conflicting.status, 412, conflicting.text);
  assert.match(conflicting.type, /^application\/json/);
  assert.equal(conflicting.json.code, "DOUBLE_VOTE");
  assert.equal(typeof conflicting.json.message, "string");
  assert.ok(conflicting.json.message.length > 0);
  assert.equal(conflicting.json.signature, undefined);
  assert.ok(!/0x[0-9a-f]{192}/.test(conflicting.text), "no signature anywhere in the refusal");

  // A vote surrounding recorded ones (round 0 history: base+2j → base+2j+1).
  const surrounding = await post(signUrl(vigil.url, r.pubkey), attestation(1, (ROUNDS - 1) * 1000 + 5000));
  assert.equal(surrounding.status, 412, surrounding.text);
  assert.equal(surrounding.json.code, "SURROUNDING_VOTE");
  assert.equal(surrounding.json.signature, undefined);

  // The identical message again: a repeat with the same signing root, signed again (BLS is deterministic).
  const again = await post(signUrl(vigil.url, r.pubkey), attestation(r.source, r.target));
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.signature, r.signature);

  // Messages recorded but never answered (in flight at a kill) are re-signed for a retrying client.
  const history = await exportHistory();
  const answered = new Set(received.map(sentKey));
  let retried = 0;
  for (const [pubkey, v] of history) {
    for (const [st, root] of v.attestations) {
      const [source, target] = st.split(":").map(Number);
      if (answered.has(sentKey({ pubkey, source, target })) || retried >= 10) continue;
      const res = await post(signUrl(vigil.url, pubkey), attestation(source, target));
      assert.equal(res.status, 200, res.text);
      assert.ok(verifies(root!, pubkey, res.json.signature));
      retried++;
    }
  }
  t.diagnostic(`re-sent ${retried} recorded-but-unanswered attestations: all signed`);

  // Refusals are not recorded: the history is unchanged.
  const later = await exportHistory();
  for (const [pubkey, v] of history) assert.deepEqual(later.get(pubkey)?.attestations, v.attestations);
});

test("after a restart: a different block at a signed slot is refused (412 DOUBLE_BLOCK_PROPOSAL), the same block re-signed", { timeout: 120_000 }, async (t) => {
  const pubkey = keystores.pubkeys[0];
  const block = structuredClone(BLOCK); // keeps Lodestar's signingRoot: Vigil must compute the same one
  const other = structuredClone(BLOCK);
  delete other.signingRoot;
  other.beacon_block.block_header.body_root = "0x" + "cd".repeat(32);

  let vigil = await start();
  const first = await post(signUrl(vigil.url, pubkey), block);
  assert.equal(first.status, 200, first.text);
  const signature: string = first.json.signature;
  assert.ok(verifies(BLOCK.signingRoot, pubkey, signature));
  const before = await post(signUrl(vigil.url, pubkey), other);
  assert.equal(before.status, 412, before.text);
  assert.equal(before.json.code, "DOUBLE_BLOCK_PROPOSAL");
  vigil.proc.kill("SIGKILL");
  await exited(vigil.proc);

  const history = await exportHistory();
  assert.equal(history.get(pubkey)?.blocks.get(BLOCK.beacon_block.block_header.slot), BLOCK.signingRoot);

  vigil = await start();
  t.after(() => stopVigil(vigil.proc));
  const conflicting = await post(signUrl(vigil.url, pubkey), other);
  assert.equal(conflicting.status, 412, conflicting.text);
  assert.match(conflicting.type, /^application\/json/);
  assert.equal(conflicting.json.code, "DOUBLE_BLOCK_PROPOSAL");
  assert.equal(typeof conflicting.json.message, "string");
  assert.equal(conflicting.json.signature, undefined);
  assert.ok(!/0x[0-9a-f]{192}/.test(conflicting.text), "no signature anywhere in the refusal");

  const again = await post(signUrl(vigil.url, pubkey), block);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.signature, signature);

  // Another key has signed no block: the "other" block is fine for it.
  const otherKey = await post(signUrl(vigil.url, keystores.pubkeys[1]), other);
  assert.equal(otherKey.status, 200, otherKey.text);

  // A graceful stop (SIGTERM) exits 0.
  const { code } = await stopVigil(vigil.proc);
  assert.equal(code, 0, vigil.output());
});
