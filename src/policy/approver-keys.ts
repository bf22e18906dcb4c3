/**
 * Approver keys: Ed25519 key pairs held by the humans who approve sign requests and policy
 * changes. Vigil only ever holds approvers' PUBLIC keys (named in the policy); the private key
 * stays on the approver's machine and signs there (`vigil approvals approve`, `vigil policy sign`).
 *
 * Formats:
 * - private key file `<name>.key`: PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), mode 0600;
 * - public key: the raw 32-byte Ed25519 key in standard base64 (44 characters, `=`-padded), which
 *   is what the policy's `approvers:` section holds; a PEM SPKI public key is accepted too;
 * - public key file `<name>.pub`: that base64 string and a newline;
 * - signatures: the 64-byte Ed25519 signature in standard base64 (88 characters).
 *
 * Only node:crypto is used (Ed25519 with `sign(null, …)` / `verify(null, …)`: PureEdDSA, RFC 8032).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { VigilError } from "../errors.js";

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows. */
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const B64_PUBKEY = /^[A-Za-z0-9+/]{43}=$/;
const B64_SIGNATURE = /^[A-Za-z0-9+/]{86}==$/;
/** Approver names: safe as file names, YAML keys and in the approval message. */
export const APPROVER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkApproverName(name: string): string {
  if (typeof name !== "string" || !APPROVER_NAME.test(name)) {
    throw new VigilError(
      "bad_request",
      "INVALID_APPROVER_NAME",
      `invalid approver name ${JSON.stringify(name)}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

/** The raw 32-byte public key of an Ed25519 key (public or private KeyObject), base64. */
export function publicKeyBase64(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== "ed25519") throw new VigilError("bad_request", "NOT_ED25519", "not an Ed25519 key");
  const der = pub.export({ format: "der", type: "spki" });
  return der.subarray(SPKI_ED25519_PREFIX.length).toString("base64");
}

/** A new approver key pair. `name` is only validated here (it names the files and the YAML entry). */
export function newApproverKeyPair(name: string): { name: string; privatePem: string; publicKey: string } {
  checkApproverName(name);
  const { privateKey } = generateKeyPairSync("ed25519");
  return {
    name,
    privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKey: publicKeyBase64(privateKey),
  };
}

/**
 * Writes a new key pair as `<dir>/<name>.key` (PKCS#8 PEM, mode 0600) and `<dir>/<name>.pub`
 * (base64 public key, mode 0644). Existing files are never overwritten (APPROVER_KEY_EXISTS).
 * `dir` is created (mode 0700) when missing.
 */
export function writeApproverKeyPair(dir: string, name: string): { name: string; keyFile: string; pubFile: string; publicKey: string } {
  checkApproverName(name);
  const keyFile = path.join(dir, `${name}.key`);
  const pubFile = path.join(dir, `${name}.pub`);
  for (const f of [keyFile, pubFile]) {
    if (fs.existsSync(f)) throw new VigilError("conflict", "APPROVER_KEY_EXISTS", `${f} already exists; it is never overwritten`);
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pair = newApproverKeyPair(name);
  const fd = fs.openSync(keyFile, "wx", 0o600);
  try {
    fs.fchmodSync(fd, 0o600); // whatever the umask
    fs.writeFileSync(fd, pair.privatePem);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(pubFile, pair.publicKey + "\n", { mode: 0o644, flag: "wx" });
  return { name, keyFile, pubFile, publicKey: pair.publicKey };
}

/** Parses an Ed25519 private key from PEM text (PKCS#8). */
export function parseApproverPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch (e) {
    throw new VigilError("bad_request", "INVALID_APPROVER_KEY", `not a PEM private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new VigilError("bad_request", "INVALID_APPROVER_KEY", `approver keys are Ed25519, this is ${key.asymmetricKeyType ?? "unknown"}`);
  }
  return key;
}

/**
 * Loads an approver's private key file. Like `--unlock file:`, a key file that group or others can
 * access is refused (mode & 0o077), unless VIGIL_ALLOW_INSECURE_APPROVER_KEY=1.
 */
export function loadApproverPrivateKey(file: string): KeyObject {
  let text: string;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new VigilError("bad_request", "FILE_UNREADABLE", `cannot read approver key ${file}: ${(e as Error).message}`);
  }
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0 && process.env.VIGIL_ALLOW_INSECURE_APPROVER_KEY !== "1") {
    const mode = (st.mode & 0o777).toString(8).padStart(3, "0");
    throw new VigilError(
      "bad_request",
      "INSECURE_APPROVER_KEY",
      `approver key ${file} is accessible by group or others (mode ${mode}): run \`chmod 600 ${file}\``,
    );
  }
  try {
    return parseApproverPrivateKey(text);
  } catch (e) {
    if (e instanceof VigilError) throw new VigilError(e.kind, e.code, `${file}: ${e.message}`);
    throw e;
  }
}

/**
 * Parses an approver public key: base64 of the raw 32 bytes (surrounding whitespace ignored), or a
 * PEM SubjectPublicKeyInfo. Anything else, or a key of another type, is INVALID_APPROVER_PUBLIC_KEY.
 */
export function parseApproverPublicKey(text: string): KeyObject {
  const bad = (why: string): VigilError => new VigilError("bad_request", "INVALID_APPROVER_PUBLIC_KEY", `invalid approver public key: ${why}`);
  if (typeof text !== "string") throw bad("not a string");
  const t = text.trim();
  if (t.startsWith("-----BEGIN")) {
    // createPublicKey would derive the public key from a private one: never accept a private key here.
    if (/PRIVATE KEY/.test(t)) throw bad("a private key; give the public key");
    let key: KeyObject;
    try {
      key = createPublicKey({ key: t, format: "pem" });
    } catch (e) {
      throw bad((e as Error).message);
    }
    if (key.type !== "public") throw bad("a private key; give the public key");
    if (key.asymmetricKeyType !== "ed25519") throw bad(`an ${key.asymmetricKeyType ?? "unknown"} key, not Ed25519`);
    return key;
  }
  if (!B64_PUBKEY.test(t)) throw bad("expected the base64 of a raw 32-byte Ed25519 key (44 characters) or a PEM public key");
  const raw = Buffer.from(t, "base64");
  if (raw.length !== 32) throw bad("not 32 bytes");
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: "der", type: "spki" });
  } catch (e) {
    throw bad((e as Error).message);
  }
}

/** The canonical (base64 raw 32 bytes) form of a public key given in either accepted form. */
export function canonicalApproverPublicKey(text: string): string {
  return publicKeyBase64(parseApproverPublicKey(text));
}

/** Signs `msg` (the exact bytes: string as UTF-8) with an approver's private key; base64 signature. */
export function signApproval(privateKey: KeyObject, msg: string | Uint8Array): string {
  if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") {
    throw new VigilError("bad_request", "INVALID_APPROVER_KEY", "an Ed25519 private key is needed to sign");
  }
  return sign(null, typeof msg === "string" ? Buffer.from(msg, "utf8") : msg, privateKey).toString("base64");
}

/**
 * True iff `signatureB64` (strict base64 of 64 bytes) is a valid Ed25519 signature of `msg` by
 * `publicKey` (a KeyObject or any accepted text form). Never throws for a malformed signature.
 */
export function verifyApproval(publicKey: KeyObject | string, msg: string | Uint8Array, signatureB64: string): boolean {
  const key = typeof publicKey === "string" ? parseApproverPublicKey(publicKey) : publicKey;
  if (typeof signatureB64 !== "string" || !B64_SIGNATURE.test(signatureB64)) return false;
  const sig = Buffer.from(signatureB64, "base64");
  if (sig.length !== 64) return false;
  try {
    return verify(null, typeof msg === "string" ? Buffer.from(msg, "utf8") : msg, key, sig);
  } catch {
    return false;
  }
}
