/**
 * `vigil keys new` and `vigil keys recover`: validator keys from a BIP-39 mnemonic
 * (EIP-2333 derivation, EIP-2334 signing paths m/12381/3600/i/0/0), written as EIP-2335
 * keystores and a deposit_data file, named and formatted as the staking-deposit-cli does:
 *
 *   <out>/keystore-m_12381_3600_<i>_0_0-<unix-seconds>.json   (mode 0600)
 *   <out>/deposit_data-<unix-seconds>.json                     (mode 0440, like the deposit-cli)
 *
 * `keysNew` prints the new mnemonic once, to stdout; it is never written to disk.
 * Everything that can be refused (options, network, address, amount, password, mnemonic) is
 * checked before a mnemonic is generated or a file is written. Each keystore is decrypted again
 * after writing and compared with the derived key. If anything fails part-way, the files this
 * run wrote are removed.
 */
import fs from "node:fs";
import path from "node:path";
import { resolveNetwork, type Network } from "../config/networks.js";
import { VigilError } from "../errors.js";
import { writeFileExclusiveSync } from "../fs-atomic.js";
import { buildDepositData, GWEI_PER_ETH, withdrawalCredentials, type DepositDataJson } from "../keys/deposit.js";
import { deriveKeyAtPath, signingKeyPath } from "../keys/derive.js";
import { decryptKeystore, encryptKeystore, pubkeyFromSecret } from "../keys/keystore.js";
import { generateMnemonic, mnemonicToSeed, normalizeMnemonic } from "../keys/mnemonic.js";

export const MIN_PASSWORD_LENGTH = 8;
export const DEFAULT_AMOUNT_GWEI = 32 * GWEI_PER_ETH;
/** MIN_ACTIVATION_BALANCE and MAX_EFFECTIVE_BALANCE_ELECTRA: the range for compounding (0x02) deposits. */
export const MIN_COMPOUNDING_AMOUNT_GWEI = 32 * GWEI_PER_ETH;
export const MAX_COMPOUNDING_AMOUNT_GWEI = 2048 * GWEI_PER_ETH;
const MAX_INDEX = 2 ** 32 - 1;

export interface KeysNewOptions {
  /** How many validator keys (1 or more). */
  count: number;
  /** Execution-layer address for the withdrawal credentials ("0x" + 40 hex; EIP-55 checked if mixed case). */
  withdrawalAddress: string;
  /** 0x02 (compounding, electra) credentials instead of 0x01. */
  compounding?: boolean;
  /** Deposit per validator in Gwei. Default 32 ETH; other amounts (32..2048 ETH) need `compounding`. */
  amountGwei?: number;
  /** --network value (mainnet, hoodi, …, or a config.yaml); its genesis fork version is signed over. */
  network: string;
  /** Output directory (created with mode 0700 if missing). */
  out: string;
  /** Keystore password: the whole file minus one trailing newline. */
  passwordFile?: string;
  /** Keystore password, asked for interactively (used when there is no passwordFile). */
  passwordPrompt?: () => Promise<string>;
  /** Keystore KDF: EIP-2335 default scrypt (n=2^18), or pbkdf2 (c=2^18; faster to unlock). */
  kdf?: "scrypt" | "pbkdf2";
  /** Where `keysNew` prints the mnemonic. Default process.stdout. */
  stdout?: { write(text: string): unknown };
}

export interface KeysRecoverOptions extends KeysNewOptions {
  /** File holding the mnemonic (whitespace between words is free). */
  mnemonicFile: string;
  /** First validator index i to derive (keys fromIndex … fromIndex+count-1). */
  fromIndex: number;
  /** Optional BIP-39 passphrase ("mnemonic password" in the deposit-cli), if one was used. */
  mnemonicPassphrase?: string;
}

export interface KeysSummary {
  /** 0x-prefixed public keys, in index order. */
  pubkeys: string[];
  /** Derivation paths, in index order. */
  paths: string[];
  /** Keystore files written, in index order. */
  files: string[];
  depositDataFile: string;
}

const bad = (code: string, message: string): VigilError => new VigilError("bad_request", code, message);

function checkCount(count: number, fromIndex: number): void {
  if (!Number.isSafeInteger(count) || count < 1) throw bad("INVALID_OPTIONS", `count must be a positive integer (got ${count})`);
  if (!Number.isSafeInteger(fromIndex) || fromIndex < 0) {
    throw bad("INVALID_OPTIONS", `the first index must be a non-negative integer (got ${fromIndex})`);
  }
  if (fromIndex + count - 1 > MAX_INDEX) throw bad("INVALID_OPTIONS", `key indices must stay below 2^32 (${fromIndex} + ${count} keys)`);
}

function checkAmount(amountGwei: number, compounding: boolean): void {
  if (!Number.isSafeInteger(amountGwei)) throw bad("INVALID_AMOUNT", `amount must be an integer number of Gwei (got ${amountGwei})`);
  if (!compounding) {
    if (amountGwei !== DEFAULT_AMOUNT_GWEI) {
      throw bad(
        "INVALID_AMOUNT",
        `without compounding (0x01 credentials) the deposit must be 32 ETH (${DEFAULT_AMOUNT_GWEI} Gwei), got ${amountGwei} Gwei; ` +
          "use compounding (0x02) credentials for 32..2048 ETH",
      );
    }
    return;
  }
  if (amountGwei < MIN_COMPOUNDING_AMOUNT_GWEI || amountGwei > MAX_COMPOUNDING_AMOUNT_GWEI) {
    throw bad(
      "INVALID_AMOUNT",
      `a compounding deposit must be 32..2048 ETH (${MIN_COMPOUNDING_AMOUNT_GWEI}..${MAX_COMPOUNDING_AMOUNT_GWEI} Gwei), got ${amountGwei} Gwei`,
    );
  }
}

/** File contents minus one trailing "\n" or "\r\n" (nothing else is trimmed). */
function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw bad("PASSWORD_FILE_UNREADABLE", `cannot read password file ${file}: ${(e as Error).message}`);
  }
  return text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
}

async function getPassword(opts: KeysNewOptions): Promise<string> {
  let password: string;
  if (opts.passwordFile !== undefined) password = readPasswordFile(opts.passwordFile);
  else if (opts.passwordPrompt) password = await opts.passwordPrompt();
  else throw bad("NO_PASSWORD_SOURCE", "a keystore password is required: give a password file or answer the prompt");
  if (typeof password !== "string" || [...password].length < MIN_PASSWORD_LENGTH) {
    throw bad("WEAK_PASSWORD", `the keystore password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  return password;
}

function readMnemonicFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw bad("MNEMONIC_FILE_UNREADABLE", `cannot read mnemonic file ${file}: ${(e as Error).message}`);
  }
  return normalizeMnemonic(text); // throws INVALID_MNEMONIC with the reason
}

/** Creates `dir` (mode 0700) if missing; refuses a path that exists and is not a directory. */
function ensureOutDir(dir: string): void {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw bad("INVALID_OPTIONS", `output path ${dir} exists and is not a directory`);
    return;
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask
}

/** Writes a new file (never overwrites) with `mode`, durably and whole (keystores and deposit data must survive a power loss). */
function writeNew(file: string, text: string, mode: number): void {
  try {
    writeFileExclusiveSync(file, text, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw bad("FILE_EXISTS", `${file} already exists; not overwriting it`);
    throw e;
  }
}

interface Plan {
  network: Network;
  withdrawalCredentials: Uint8Array;
  amountGwei: number;
  password: string;
}

/** Checks every option, then asks for the password (`beforePassword` runs in between). */
async function prepare(opts: KeysNewOptions, fromIndex: number, beforePassword?: () => void): Promise<Plan> {
  if (opts === null || typeof opts !== "object") throw bad("INVALID_OPTIONS", "options are required");
  checkCount(opts.count, fromIndex);
  if (opts.kdf !== undefined && opts.kdf !== "scrypt" && opts.kdf !== "pbkdf2") {
    throw bad("INVALID_OPTIONS", `kdf must be scrypt or pbkdf2 (got ${JSON.stringify(opts.kdf)})`);
  }
  if (typeof opts.out !== "string" || opts.out === "") throw bad("INVALID_OPTIONS", "an output directory is required");
  const network = resolveNetwork(opts.network);
  const compounding = opts.compounding === true;
  const wc = withdrawalCredentials({ address: opts.withdrawalAddress, compounding });
  const amountGwei = opts.amountGwei ?? DEFAULT_AMOUNT_GWEI;
  checkAmount(amountGwei, compounding);
  beforePassword?.();
  const password = await getPassword(opts);
  return { network, withdrawalCredentials: wc, amountGwei, password };
}

/** Derives, encrypts, verifies and writes keys fromIndex … fromIndex+count-1 of `mnemonic`. */
async function writeKeys(
  mnemonic: string,
  passphrase: string,
  fromIndex: number,
  opts: KeysNewOptions,
  plan: Plan,
  timestamp: number,
): Promise<KeysSummary> {
  const written: string[] = [];
  const summary: KeysSummary = { pubkeys: [], paths: [], files: [], depositDataFile: "" };
  const seed = await mnemonicToSeed(mnemonic, passphrase);
  try {
    const deposits: DepositDataJson[] = [];
    for (let i = fromIndex; i < fromIndex + opts.count; i++) {
      const keyPath = signingKeyPath(i);
      const file = path.join(opts.out, `keystore-${keyPath.replace(/\//g, "_")}-${timestamp}.json`);
      const secret = deriveKeyAtPath(seed, keyPath);
      try {
        const pubkey = pubkeyFromSecret(secret);
        const keystore = await encryptKeystore(secret, plan.password, { kdf: opts.kdf ?? "scrypt", path: keyPath });
        // Like the deposit-cli: the keystore must give back exactly the derived key.
        const check = await decryptKeystore(keystore, plan.password);
        const same = Buffer.from(check).equals(secret);
        check.fill(0);
        if (!same) throw new VigilError("internal", "KEYSTORE_VERIFY_FAILED", `keystore for ${keyPath} does not decrypt to the derived key`);
        deposits.push(
          buildDepositData(secret, {
            withdrawalCredentials: plan.withdrawalCredentials,
            amountGwei: plan.amountGwei,
            network: plan.network,
          }),
        );
        writeNew(file, JSON.stringify(keystore), 0o600);
        written.push(file);
        summary.pubkeys.push(pubkey);
        summary.paths.push(keyPath);
        summary.files.push(file);
      } finally {
        secret.fill(0);
      }
    }
    const depositDataFile = path.join(opts.out, `deposit_data-${timestamp}.json`);
    writeNew(depositDataFile, JSON.stringify(deposits), 0o440);
    written.push(depositDataFile);
    summary.depositDataFile = depositDataFile;
    return summary;
  } catch (e) {
    for (const f of written) fs.rmSync(f, { force: true });
    throw e;
  } finally {
    seed.fill(0);
  }
}

const MNEMONIC_WARNING = [
  "",
  "================================ YOUR MNEMONIC ================================",
  "Write these words down, in order, and keep them offline somewhere safe.",
  "They are the ONLY backup of these validator keys and of their withdrawal keys:",
  "Vigil does not save them anywhere and will NOT show them again.",
  "Anyone who sees them controls the keys. Never type them into a website.",
  "",
];

function printMnemonic(mnemonic: string, out: { write(text: string): unknown }): void {
  out.write([...MNEMONIC_WARNING, mnemonic, "", "=".repeat(79), ""].join("\n"));
}

function checkFreeNames(out: string, fromIndex: number, count: number, timestamp: number): void {
  const names = [`deposit_data-${timestamp}.json`];
  for (let i = fromIndex; i < fromIndex + count; i++) names.push(`keystore-${signingKeyPath(i).replace(/\//g, "_")}-${timestamp}.json`);
  for (const n of names) {
    const f = path.join(out, n);
    if (fs.existsSync(f)) throw bad("FILE_EXISTS", `${f} already exists; not overwriting it (try again in a second)`);
  }
}

/**
 * Generates a new 24-word mnemonic, prints it once (with a warning) to stdout, and writes
 * keystores and deposit data for keys 0 … count-1.
 */
export async function keysNew(opts: KeysNewOptions): Promise<KeysSummary> {
  const plan = await prepare(opts, 0);
  ensureOutDir(opts.out);
  const timestamp = Math.floor(Date.now() / 1000);
  checkFreeNames(opts.out, 0, opts.count, timestamp);
  const mnemonic = generateMnemonic();
  printMnemonic(mnemonic, opts.stdout ?? process.stdout);
  return writeKeys(mnemonic, "", 0, opts, plan, timestamp);
}

/**
 * Re-derives keys fromIndex … fromIndex+count-1 from an existing mnemonic (read from a file)
 * and writes their keystores and deposit data. The mnemonic is not printed.
 */
export async function keysRecover(opts: KeysRecoverOptions): Promise<KeysSummary> {
  if (opts === null || typeof opts !== "object") throw bad("INVALID_OPTIONS", "options are required");
  let mnemonic = "";
  const plan = await prepare(opts, opts.fromIndex, () => {
    if (typeof opts.mnemonicFile !== "string" || opts.mnemonicFile === "") throw bad("INVALID_OPTIONS", "a mnemonic file is required");
    mnemonic = readMnemonicFile(opts.mnemonicFile); // a bad mnemonic is refused before the password prompt
  });
  ensureOutDir(opts.out);
  const timestamp = Math.floor(Date.now() / 1000);
  checkFreeNames(opts.out, opts.fromIndex, opts.count, timestamp);
  return writeKeys(mnemonic, opts.mnemonicPassphrase ?? "", opts.fromIndex, opts, plan, timestamp);
}
