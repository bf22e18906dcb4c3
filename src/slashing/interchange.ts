/**
 * EIP-3076 interchange format v5: strict parsing, normalisation and serialisation.
 */
import { badRequest, VigilError } from "../errors.js";
import { normaliseSigningRoot } from "./rules.js";
import type { Interchange, InterchangeAttestation, InterchangeBlock, InterchangeMetadata, InterchangeValidator, SigningRoot } from "./types.js";

export const INTERCHANGE_FORMAT_VERSION = "5";

const PUBKEY_RE = /^0x[0-9a-f]{96}$/;
const ROOT_RE = /^0x[0-9a-f]{64}$/;
const DECIMAL_RE = /^[0-9]+$/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** One validator entry's records in numeric form. */
export interface ValidatorRecords {
  blocks: { slot: number; signingRoot: SigningRoot }[];
  attestations: { source: number; target: number; signingRoot: SigningRoot }[];
}

export function bytesToHex(bytes: Uint8Array): string {
  return "0x" + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Decode 0x hex (already validated) into bytes. */
export function hexToBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.slice(2), "hex"));
}

export function invalidInterchange(path: string | (() => string), message: string): never {
  throw badRequest("INVALID_INTERCHANGE", `invalid slashing-protection interchange: ${typeof path === "string" ? path : path()}: ${message}`);
}

/** Where a value sits, for errors; a record's path is built only if it is invalid (an import reads a million). */
type Path = string | (() => string);

function object(v: unknown, path: Path): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) invalidInterchange(path, "expected an object");
  return v as Record<string, unknown>;
}

function array(v: unknown, path: Path): unknown[] {
  if (!Array.isArray(v)) invalidInterchange(path, "expected an array");
  return v;
}

/** A decimal string holding a safe integer; returned in canonical form. */
function decimal(v: unknown, path: Path): string {
  if (typeof v !== "string" || !DECIMAL_RE.test(v)) invalidInterchange(path, "expected a decimal string");
  if (v.length > 15 && BigInt(v) > MAX_SAFE) invalidInterchange(path, `${v} exceeds ${Number.MAX_SAFE_INTEGER}`); // 15 digits are always safe
  return String(Number(v));
}

function hex(v: unknown, path: Path, re: RegExp, what: string): string {
  const s = typeof v === "string" ? v.toLowerCase() : undefined;
  if (s === undefined || !re.test(s)) invalidInterchange(path, `expected ${what} as 0x-prefixed hex`);
  return s;
}

const ZERO_ROOT_HEX = "0x" + "0".repeat(64);

/** An optional signing root; absent or all-zero → undefined (unknown). */
function signingRoot(v: unknown, path: Path): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = hex(v, path, ROOT_RE, "a 32-byte signing root");
  return s === ZERO_ROOT_HEX ? undefined : s;
}

/** `metadata`, validated (EIP-3076: format version "5" and a 32-byte genesis validators root). */
export function parseInterchangeMetadata(v: unknown): InterchangeMetadata {
  const meta = object(v, "metadata");
  const version = meta.interchange_format_version;
  if (typeof version !== "string") invalidInterchange("metadata.interchange_format_version", "expected a string");
  if (version !== INTERCHANGE_FORMAT_VERSION) {
    throw badRequest("INTERCHANGE_VERSION_UNSUPPORTED", `unsupported interchange_format_version "${version}" (only "5" is supported)`);
  }
  const gvr = hex(meta.genesis_validators_root, "metadata.genesis_validators_root", ROOT_RE, "a 32-byte root");
  return { interchange_format_version: INTERCHANGE_FORMAT_VERSION, genesis_validators_root: gvr };
}

/** One `data` entry (`p` names it in errors), validated and normalised. */
export function parseInterchangeValidator(entry: unknown, p: string): InterchangeValidator {
  const v = object(entry, p);
  return {
    pubkey: hex(v.pubkey, `${p}.pubkey`, PUBKEY_RE, "a 48-byte pubkey"),
    signed_blocks: array(v.signed_blocks, `${p}.signed_blocks`).map((b, j): InterchangeBlock => {
      const q = (): string => `${p}.signed_blocks[${j}]`;
      const o = object(b, q);
      const block: InterchangeBlock = { slot: decimal(o.slot, () => `${q()}.slot`) };
      const root = signingRoot(o.signing_root, () => `${q()}.signing_root`);
      if (root !== undefined) block.signing_root = root;
      return block;
    }),
    signed_attestations: array(v.signed_attestations, `${p}.signed_attestations`).map((a, j): InterchangeAttestation => {
      const q = (): string => `${p}.signed_attestations[${j}]`;
      const o = object(a, q);
      const att: InterchangeAttestation = {
        source_epoch: decimal(o.source_epoch, () => `${q()}.source_epoch`),
        target_epoch: decimal(o.target_epoch, () => `${q()}.target_epoch`),
      };
      const root = signingRoot(o.signing_root, () => `${q()}.signing_root`);
      if (root !== undefined) att.signing_root = root;
      return att;
    }),
  };
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    invalidInterchange("$", `not JSON (${(e as Error).message})`);
  }
}

/**
 * Validate an EIP-3076 v5 document strictly (the parsed JSON value, or its text) and return it normalised:
 * hex in lower case, numbers in canonical decimal, all-zero signing roots omitted. Unknown properties are dropped.
 * Throws VigilError bad_request (INVALID_INTERCHANGE, INTERCHANGE_VERSION_UNSUPPORTED).
 */
export function parseInterchange(json: unknown): Interchange {
  const doc = object(typeof json === "string" ? parseJsonText(json) : json, "$");
  const metadata = parseInterchangeMetadata(doc.metadata);
  const data = array(doc.data, "data").map((entry, i) => parseInterchangeValidator(entry, `data[${i}]`));
  return { metadata, data };
}

/**
 * An interchange document read one validator entry at a time, so that a large file is never in memory
 * whole (see interchange-file.ts). Stores import its entries inside one transaction: an invalid entry
 * anywhere rolls the whole import back.
 */
export interface InterchangeSource {
  /** Validated and normalised. */
  readonly metadata: InterchangeMetadata;
  /** The `data` entries in order, each validated and normalised as it is read (throws VigilError bad_request at the first invalid one). */
  entries(): Iterable<InterchangeValidator>;
}

export function isInterchangeSource(doc: unknown): doc is InterchangeSource {
  return typeof (doc as InterchangeSource | null)?.entries === "function";
}

/** A document already in memory (the parsed JSON value, or its text) as a source: metadata checked now, entries as they are read. */
export function interchangeSource(json: unknown): InterchangeSource {
  if (isInterchangeSource(json)) return json;
  const doc = object(typeof json === "string" ? parseJsonText(json) : json, "$");
  const metadata = parseInterchangeMetadata(doc.metadata);
  const data = array(doc.data, "data");
  return {
    metadata,
    *entries() {
      for (let i = 0; i < data.length; i++) yield parseInterchangeValidator(data[i], `data[${i}]`);
    },
  };
}

/** One entry's records in numeric form (its roots decoded; all-zero roots are unknown). */
export function validatorRecords(v: InterchangeValidator): ValidatorRecords {
  return {
    blocks: v.signed_blocks.map((b) => ({ slot: Number(b.slot), signingRoot: rootOf(b.signing_root) })),
    attestations: v.signed_attestations.map((a) => ({ source: Number(a.source_epoch), target: Number(a.target_epoch), signingRoot: rootOf(a.signing_root) })),
  };
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
