/**
 * EIP-3076 interchange format v5: strict parsing, normalisation and serialisation.
 */
import { badRequest, VigilError } from "../errors.js";
import { normaliseSigningRoot } from "./rules.js";
import type { Interchange, InterchangeAttestation, InterchangeBlock, InterchangeValidator, Pubkey, SigningRoot } from "./types.js";

export const INTERCHANGE_FORMAT_VERSION = "5";

const PUBKEY_RE = /^0x[0-9a-f]{96}$/;
const ROOT_RE = /^0x[0-9a-f]{64}$/;
const DECIMAL_RE = /^[0-9]+$/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** One validator's records in numeric form, merged across all `data` entries with its pubkey. */
export interface ValidatorRecords {
  blocks: { slot: number; signingRoot: SigningRoot }[];
  attestations: { source: number; target: number; signingRoot: SigningRoot }[];
}

/** An interchange document decoded for import. */
export interface InterchangeRecords {
  genesisValidatorsRoot: Uint8Array;
  validators: Map<Pubkey, ValidatorRecords>;
}

export function bytesToHex(bytes: Uint8Array): string {
  return "0x" + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Decode 0x hex (already validated) into bytes. */
export function hexToBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.slice(2), "hex"));
}

function invalid(path: string, message: string): never {
  throw badRequest("INVALID_INTERCHANGE", `invalid slashing-protection interchange: ${path}: ${message}`);
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) invalid(path, "expected an object");
  return v as Record<string, unknown>;
}

function array(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) invalid(path, "expected an array");
  return v;
}

/** A decimal string holding a safe integer; returned in canonical form. */
function decimal(v: unknown, path: string): string {
  if (typeof v !== "string" || !DECIMAL_RE.test(v)) invalid(path, "expected a decimal string");
  if (BigInt(v) > MAX_SAFE) invalid(path, `${v} exceeds ${Number.MAX_SAFE_INTEGER}`);
  return String(Number(v));
}

function hex(v: unknown, path: string, re: RegExp, what: string): string {
  const s = typeof v === "string" ? v.toLowerCase() : undefined;
  if (s === undefined || !re.test(s)) invalid(path, `expected ${what} as 0x-prefixed hex`);
  return s;
}

/** An optional signing root; absent or all-zero → undefined (unknown). */
function signingRoot(v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = hex(v, path, ROOT_RE, "a 32-byte signing root");
  return /^0x0+$/.test(s) ? undefined : s;
}

function withRoot<T extends object>(record: T, root: string | undefined): T & { signing_root?: string } {
  return root === undefined ? record : { ...record, signing_root: root };
}

/**
 * Validate an EIP-3076 v5 document strictly (the parsed JSON value, or its text) and return it normalised:
 * hex in lower case, numbers in canonical decimal, all-zero signing roots omitted. Unknown properties are dropped.
 * Throws VigilError bad_request (INVALID_INTERCHANGE, INTERCHANGE_VERSION_UNSUPPORTED).
 */
export function parseInterchange(json: unknown): Interchange {
  if (typeof json === "string") {
    try {
      json = JSON.parse(json);
    } catch (e) {
      invalid("$", `not JSON (${(e as Error).message})`);
    }
  }
  const doc = object(json, "$");
  const meta = object(doc.metadata, "metadata");
  const version = meta.interchange_format_version;
  if (typeof version !== "string") invalid("metadata.interchange_format_version", "expected a string");
  if (version !== INTERCHANGE_FORMAT_VERSION) {
    throw badRequest("INTERCHANGE_VERSION_UNSUPPORTED", `unsupported interchange_format_version "${version}" (only "5" is supported)`);
  }
  const gvr = hex(meta.genesis_validators_root, "metadata.genesis_validators_root", ROOT_RE, "a 32-byte root");
  const data = array(doc.data, "data").map((entry, i): InterchangeValidator => {
    const p = `data[${i}]`;
    const v = object(entry, p);
    return {
      pubkey: hex(v.pubkey, `${p}.pubkey`, PUBKEY_RE, "a 48-byte pubkey"),
      signed_blocks: array(v.signed_blocks, `${p}.signed_blocks`).map((b, j): InterchangeBlock => {
        const q = `${p}.signed_blocks[${j}]`;
        const o = object(b, q);
        return withRoot({ slot: decimal(o.slot, `${q}.slot`) }, signingRoot(o.signing_root, `${q}.signing_root`));
      }),
      signed_attestations: array(v.signed_attestations, `${p}.signed_attestations`).map((a, j): InterchangeAttestation => {
        const q = `${p}.signed_attestations[${j}]`;
        const o = object(a, q);
        return withRoot(
          { source_epoch: decimal(o.source_epoch, `${q}.source_epoch`), target_epoch: decimal(o.target_epoch, `${q}.target_epoch`) },
          signingRoot(o.signing_root, `${q}.signing_root`),
        );
      }),
    };
  });
  return { metadata: { interchange_format_version: INTERCHANGE_FORMAT_VERSION, genesis_validators_root: gvr }, data };
}

/** Decode a parsed (normalised) document into numeric records, merging entries that share a pubkey. */
export function interchangeRecords(doc: Interchange): InterchangeRecords {
  const validators = new Map<Pubkey, ValidatorRecords>();
  for (const v of doc.data) {
    let rec = validators.get(v.pubkey);
    if (rec === undefined) validators.set(v.pubkey, (rec = { blocks: [], attestations: [] }));
    for (const b of v.signed_blocks) rec.blocks.push({ slot: Number(b.slot), signingRoot: rootOf(b.signing_root) });
    for (const a of v.signed_attestations) {
      rec.attestations.push({ source: Number(a.source_epoch), target: Number(a.target_epoch), signingRoot: rootOf(a.signing_root) });
    }
  }
  return { genesisValidatorsRoot: hexToBytes(doc.metadata.genesis_validators_root), validators };
}

function rootOf(hexRoot: string | undefined): SigningRoot {
  return hexRoot === undefined ? null : normaliseSigningRoot(hexToBytes(hexRoot));
}

/** JSON text of an interchange document (validated first). */
export function serializeInterchange(doc: Interchange, space?: number): string {
  try {
    return JSON.stringify(parseInterchange(doc), null, space);
  } catch (e) {
    if (e instanceof VigilError) throw new VigilError("internal", "INVALID_INTERCHANGE", `refusing to serialise: ${e.message}`);
    throw e;
  }
}
