/** `vigil slashing import|export|watermark|prune`: EIP-3076 interchange files and the protection database's upkeep. */
import fs from "node:fs";
import path from "node:path";
import { resolveNetwork } from "../config/networks.js";
import { VigilError } from "../errors.js";
import { InterchangeFileWriter, openInterchangeFile } from "../slashing/interchange-file.js";
import { openStore } from "../vault/service.js";
import type { SlashingStore } from "../slashing/store/store.js";
import { DB_FILE } from "../config/files.js";

export interface StoreFlags {
  dataDir: string;
  /** PostgreSQL instead of the data dir's SQLite file. */
  dbUrl?: string;
  dbSchema?: string;
}

function open(flags: StoreFlags): Promise<SlashingStore> {
  return openStore({ dataDir: flags.dataDir, dbUrl: flags.dbUrl, dbSchema: flags.dbSchema });
}

export async function importCommand(file: string, flags: StoreFlags & { network?: string }): Promise<void> {
  // The file is checked and then read one validator entry at a time (never whole in memory).
  const source = openInterchangeFile(file);
  try {
    // Check the file against --network before touching the database (a refused import binds nothing).
    const network = flags.network ? resolveNetwork(flags.network) : null;
    if (network?.genesisValidatorsRoot) {
      const expected = "0x" + Buffer.from(network.genesisValidatorsRoot).toString("hex");
      if (source.metadata.genesis_validators_root !== expected) {
        throw new VigilError(
          "bad_request",
          "GENESIS_VALIDATORS_ROOT_MISMATCH",
          `${file} is for genesis validators root ${source.metadata.genesis_validators_root}, not ${network.name}'s (${expected})`,
        );
      }
    }
    for (const entry of source.entries()) void entry; // every entry checked before the database is opened (or created)
    const store = await open(flags);
    try {
      const s = await store.importInterchange(source);
      process.stdout.write(
        `imported ${file}: ${s.validators} validators (${s.validatorsAdded} new), ` +
          `${s.blocksImported} blocks (${s.blocksSkipped} already known), ` +
          `${s.attestationsImported} attestations (${s.attestationsSkipped} already known)\n`,
      );
    } finally {
      await store.close();
    }
  } finally {
    source.close();
  }
}

/** Commands that change or read a history refuse a data directory without one (a mistyped path would start an empty one). */
function requireDatabase(flags: StoreFlags): void {
  const dbFile = path.join(flags.dataDir, DB_FILE);
  if (!flags.dbUrl && !fs.existsSync(dbFile)) {
    throw new VigilError("not_found", "NO_DATABASE", `no protection database at ${dbFile} (start Vigil or import a history there first)`);
  }
}

export async function exportCommand(file: string, flags: StoreFlags & { pubkey?: string[] }): Promise<void> {
  requireDatabase(flags);
  const store = await open(flags);
  try {
    const out = new InterchangeFileWriter(file);
    try {
      await store.exportInterchangeTo(out, flags.pubkey?.map((p) => p.toLowerCase()));
      out.finish();
    } catch (e) {
      out.abort();
      throw e;
    }
    const { validators, blocks, attestations } = out.written;
    process.stdout.write(`exported ${validators} validators, ${blocks} blocks, ${attestations} attestations to ${file}\n`);
  } finally {
    await store.close();
  }
}

/**
 * `vigil slashing watermark`: set (or, with neither --slot nor --epoch, clear) a low or high
 * watermark for some validators or all of them, then print the watermarks in force.
 */
export async function watermarkCommand(
  flags: StoreFlags & { low?: boolean; high?: boolean; slot?: number; epoch?: number; pubkey?: string[] },
): Promise<void> {
  if (!!flags.low === !!flags.high) throw new VigilError("bad_request", "INVALID_OPTIONS", "give exactly one of --low or --high");
  const kind = flags.low ? "low" : "high";
  requireDatabase(flags);
  const store = await open(flags);
  try {
    const targets = flags.pubkey?.length ? flags.pubkey.map((p) => p.toLowerCase()) : [undefined];
    for (const pubkey of targets) await store.setWatermark({ kind, pubkey, slot: flags.slot, epoch: flags.epoch });
    for (const w of await store.getWatermarks()) {
      process.stdout.write(`${w.kind} ${w.pubkey ?? "all validators"}: slot ${w.slot ?? "-"}, epoch ${w.epoch ?? "-"}\n`);
    }
  } finally {
    await store.close();
  }
}

/**
 * `vigil slashing retired`: list the validators retired by a Keymanager DELETE (their keys are not
 * loaded, nothing is signed for them); `--lift <pubkey...>` lifts their retirement.
 */
export async function retiredCommand(flags: StoreFlags & { lift?: string[] }): Promise<void> {
  requireDatabase(flags);
  const store = await open(flags);
  try {
    if (flags.lift?.length) {
      const wanted = flags.lift.map((p) => p.toLowerCase());
      const lifted = new Set(await store.unretire(wanted));
      for (const pk of wanted) process.stdout.write(`${pk}: ${lifted.has(pk) ? "retirement lifted (a running instance that left its key out as retired loads it again within a slot from keys.vigil, at POST /reload from a keystore directory; otherwise at its next start)" : "was not retired"}\n`);
    }
    const retired = await store.getRetired();
    if (retired.length === 0) process.stdout.write("no retired validators\n");
    for (const r of retired) process.stdout.write(`retired ${r.pubkey} since ${r.retiredAt}\n`);
  } finally {
    await store.close();
  }
}

/**
 * `vigil slashing prune --keep-epochs N`: delete each validator's attestations more than N target
 * epochs below its newest, and blocks more than N epochs' slots below its newest block. What stays
 * still refuses everything the deleted records refused (src/slashing/rules.ts prunePlan).
 */
export async function pruneCommand(flags: StoreFlags & { keepEpochs: number; pubkey?: string[] }): Promise<void> {
  requireDatabase(flags);
  const { SLOTS_PER_EPOCH } = await import("@lodestar/params");
  const store = await open(flags);
  try {
    const s = await store.prune({ epochs: flags.keepEpochs, slots: flags.keepEpochs * SLOTS_PER_EPOCH }, flags.pubkey?.map((p) => p.toLowerCase()));
    process.stdout.write(
      `pruned ${s.validators} validators (kept each one's newest ${flags.keepEpochs} epochs): ` +
        `${s.blocksDeleted} blocks and ${s.attestationsDeleted} attestations deleted\n`,
    );
    for (const pk of s.kept) process.stdout.write(`kept every attestation of ${pk}: a kept vote surrounds an older one (a slashable history)\n`);
  } finally {
    await store.close();
  }
}
