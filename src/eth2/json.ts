/**
 * Strict decoding of the Ethereum consensus JSON encoding into SSZ values.
 *
 * Lodestar's own `fromJson` is lenient ("0x10" parses as 0, "-1" as -1, "1.5" as 1), and its
 * 64-bit integers are JS numbers. A signer must sign exactly what the client meant, so every
 * value is checked here against the SSZ type itself, and uint64 fields are decoded as bigint
 * into an equivalent "exact" type (same serialization, same hash_tree_root).
 */
import {
  BitListType,
  BitVectorType,
  BooleanType,
  ByteListType,
  ByteVectorType,
  ContainerType,
  ListBasicType,
  ListCompositeType,
  UintBigintType,
  UintNumberType,
  VectorBasicType,
  VectorCompositeType,
  type Type,
} from "@chainsafe/ssz";
import { badRequest } from "../errors.js";

// Any SSZ type; the walker dispatches on the concrete class.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyType = Type<any>;

const exactCache = new WeakMap<AnyType, AnyType>();

/** The same SSZ type with every uint of 8 or more bytes decoded as bigint (exact up to 2^64-1). */
export function exactType(type: AnyType): AnyType {
  const cached = exactCache.get(type);
  if (cached) return cached;
  let out: AnyType;
  if (type instanceof UintNumberType) {
    out = type.byteLength >= 8 ? new UintBigintType(8) : type;
  } else if (type instanceof ContainerType) {
    const fields: Record<string, AnyType> = {};
    for (const f of type.fieldsEntries) fields[f.fieldName as string] = exactType(f.fieldType as AnyType);
    out = new ContainerType(fields, type.opts);
  } else if (type instanceof ListCompositeType) {
    out = new ListCompositeType(exactType(type.elementType) as never, type.limit);
  } else if (type instanceof VectorCompositeType) {
    out = new VectorCompositeType(exactType(type.elementType) as never, type.length);
  } else if (type instanceof ListBasicType) {
    out = new ListBasicType(exactType(type.elementType) as never, type.limit);
  } else if (type instanceof VectorBasicType) {
    out = new VectorBasicType(exactType(type.elementType) as never, type.length);
  } else {
    out = type; // byte arrays, bit arrays, booleans, big uints: already exact
  }
  exactCache.set(type, out);
  return out;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const HEX = /^0x([0-9a-fA-F]{2})*$/;

function fail(path: string, what: string): never {
  throw badRequest("INVALID_FIELD", `${path || "body"}: ${what}`);
}

/**
 * Parse a uint of `byteLength` bytes from a decimal string (or a safe JSON integer: the
 * Web3Signer examples send some that way). JSON.parse has already turned 3e7 or 30000000.0 into
 * the integer 30000000; that spelling is not seen here.
 */
export function parseUint(json: unknown, byteLength: number, path: string): bigint {
  let v: bigint;
  if (typeof json === "string") {
    if (!DECIMAL.test(json) || json.length > 80) fail(path, `expected an unsigned decimal string, got ${JSON.stringify(json).slice(0, 40)}`);
    v = BigInt(json);
  } else if (typeof json === "number") {
    if (!Number.isSafeInteger(json) || json < 0) fail(path, `expected an unsigned integer, got ${json}`);
    v = BigInt(json);
  } else {
    fail(path, `expected an unsigned decimal string, got ${json === null ? "null" : typeof json}`);
  }
  if (v >= 1n << BigInt(8 * byteLength)) fail(path, `out of range for uint${8 * byteLength}`);
  return v;
}

/** Parse 0x-prefixed hex bytes; `length` exact or `max` bound. */
export function parseHex(json: unknown, path: string, length?: number, max?: number): Uint8Array {
  if (typeof json !== "string" || !HEX.test(json)) fail(path, "expected 0x-prefixed hex bytes");
  const n = (json.length - 2) / 2;
  if (length !== undefined && n !== length) fail(path, `expected ${length} bytes, got ${n}`);
  if (max !== undefined && n > max) fail(path, `expected at most ${max} bytes, got ${n}`);
  return Uint8Array.from(Buffer.from(json.slice(2), "hex"));
}

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Decode `json` as a value of the exact type of `type`. Field names are the spec's snake_case;
 * camelCase spellings are accepted too (some clients and the Web3Signer examples send them), but
 * not both for one field. A field the type does not have is refused: it means the client meant
 * another type (a later fork's block sent as a phase0 one), and dropping it would sign something else.
 */
export function fromStrictJson(type: AnyType, json: unknown, path = ""): unknown {
  if (type instanceof UintNumberType) {
    const v = parseUint(json, type.byteLength, path);
    return type.byteLength >= 8 ? v : Number(v);
  }
  if (type instanceof UintBigintType) return parseUint(json, type.byteLength, path);
  if (type instanceof BooleanType) {
    if (typeof json !== "boolean") fail(path, "expected true or false");
    return json;
  }
  if (type instanceof ByteVectorType) return parseHex(json, path, type.lengthBytes);
  if (type instanceof ByteListType) return parseHex(json, path, undefined, type.limitBytes);
  if (type instanceof BitVectorType) {
    const lengthBytes = Math.ceil(type.lengthBits / 8);
    const bytes = parseHex(json, path, lengthBytes);
    // Bits beyond the vector's length must be zero.
    const extra = lengthBytes * 8 - type.lengthBits;
    if (extra > 0 && bytes[bytes.length - 1] >> (8 - extra) !== 0) fail(path, "bits set beyond the vector's length");
    return type.deserialize(bytes);
  }
  if (type instanceof BitListType) {
    const bytes = parseHex(json, path, undefined, Math.ceil((type.limitBits + 1) / 8));
    if (bytes.length === 0 || bytes[bytes.length - 1] === 0) fail(path, "bit list without its length bit");
    try {
      return type.deserialize(bytes);
    } catch {
      fail(path, `bit list longer than its limit of ${type.limitBits}`);
    }
  }
  if (type instanceof ContainerType) {
    if (typeof json !== "object" || json === null || Array.isArray(json)) fail(path, "expected an object");
    const obj = json as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of type.fieldsEntries) {
      const key = Object.hasOwn(obj, f.jsonKey) ? f.jsonKey : camel(f.jsonKey);
      const child = path ? `${path}.${f.jsonKey}` : f.jsonKey;
      if (!Object.hasOwn(obj, key)) fail(child, "missing");
      out[f.fieldName as string] = fromStrictJson(f.fieldType as AnyType, obj[key], child);
    }
    let keys = 0;
    for (const k in obj) if (Object.hasOwn(obj, k)) keys++;
    if (keys !== type.fieldsEntries.length) refuseExtraKey(type, obj, path);
    return out;
  }
  if (
    type instanceof ListCompositeType ||
    type instanceof ListBasicType ||
    type instanceof VectorCompositeType ||
    type instanceof VectorBasicType
  ) {
    if (!Array.isArray(json)) fail(path, "expected an array");
    const isList = type instanceof ListCompositeType || type instanceof ListBasicType;
    const bound = isList ? type.limit : type.length;
    if (isList ? json.length > bound : json.length !== bound) {
      fail(path, isList ? `more than ${bound} elements` : `expected ${bound} elements`);
    }
    return json.map((el, i) => fromStrictJson(type.elementType as AnyType, el, `${path}[${i}]`));
  }
  fail(path, `unsupported SSZ type ${type.constructor.name}`);
}

/** Name the key that is not one of the container's fields, or a field given in both spellings. */
function refuseExtraKey(type: { fieldsEntries: { jsonKey: string }[] }, obj: Record<string, unknown>, path: string): never {
  const names = new Map<string, string>();
  for (const f of type.fieldsEntries) {
    names.set(f.jsonKey, f.jsonKey);
    names.set(camel(f.jsonKey), f.jsonKey);
  }
  const seen = new Set<string>();
  for (const k of Object.keys(obj)) {
    const field = names.get(k);
    const at = path ? `${path}.${k}` : k;
    if (field === undefined) fail(at, "unknown field (not part of this message type)");
    if (seen.has(field)) fail(at, `field ${field} given twice (snake_case and camelCase)`);
    seen.add(field);
  }
  fail(path, "unexpected fields");
}

/** Strictly decode `json` as `type` and return its hash_tree_root and the decoded value. */
export function decodeAndHash(type: AnyType, json: unknown, path: string): { root: Uint8Array; value: unknown } {
  const exact = exactType(type);
  const value = fromStrictJson(type, json, path);
  return { root: exact.hashTreeRoot(value), value };
}
