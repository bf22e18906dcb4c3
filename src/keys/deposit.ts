/**
 * Withdrawal credentials and signed deposit data, in the staking-deposit-cli
 * `deposit_data-<timestamp>.json` format the Staking Launchpad reads.
 *
 * - Withdrawal credentials (consensus-specs): ETH1_ADDRESS_WITHDRAWAL_PREFIX 0x01 (capella) or
 *   COMPOUNDING_WITHDRAWAL_PREFIX 0x02 (electra), then 11 zero bytes, then the 20-byte address.
 * - Signature (phase0 deposit-contract / is_valid_deposit_signature): BLS over
 *   compute_signing_root(DepositMessage(pubkey, withdrawal_credentials, amount),
 *   compute_domain(DOMAIN_DEPOSIT, GENESIS_FORK_VERSION, ZERO_ROOT)).
 * - Entry (staking-deposit-cli credentials.py deposit_datum_dict): DepositData's fields, then
 *   deposit_message_root, deposit_data_root, fork_version, network_name, deposit_cli_version;
 *   bytes as lower-case hex without 0x, amount as a JSON number of Gwei.
 */
import { SecretKey } from "@chainsafe/blst";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { ssz } from "@lodestar/types";
import { resolveNetwork, type Network } from "../config/networks.js";
import { computeDomain, computeSigningRoot, DomainType, ZERO_ROOT } from "../eth2/domain.js";
import { VigilError } from "../errors.js";

export const ETH1_ADDRESS_WITHDRAWAL_PREFIX = 0x01;
export const COMPOUNDING_WITHDRAWAL_PREFIX = 0x02;
export const GWEI_PER_ETH = 1_000_000_000;
/** The deposit contract's minimum deposit (1 ETH). */
export const MIN_DEPOSIT_GWEI = 1 * GWEI_PER_ETH;
/** MAX_EFFECTIVE_BALANCE_ELECTRA (2048 ETH): more is never useful in one deposit. */
export const MAX_DEPOSIT_GWEI = 2048 * GWEI_PER_ETH;
/**
 * The deposit_cli_version written in each entry. The Launchpad checks it against a minimum
 * version; this is the last ethereum/staking-deposit-cli release, whose format this matches.
 */
export const DEPOSIT_CLI_VERSION = "2.8.0";

/** One entry of a deposit_data-*.json file, field order as the deposit-cli writes it. */
export interface DepositDataJson {
  pubkey: string;
  withdrawal_credentials: string;
  amount: number;
  signature: string;
  deposit_message_root: string;
  deposit_data_root: string;
  fork_version: string;
  network_name: string;
  deposit_cli_version: string;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const badAddress = (address: unknown, why: string): VigilError =>
  new VigilError("bad_request", "INVALID_WITHDRAWAL_ADDRESS", `invalid withdrawal address ${JSON.stringify(address)}: ${why}`);

/** EIP-55 mixed-case checksum encoding of a 20-byte address given as 40 lower-case hex digits. */
export function toChecksumAddress(lowerHex40: string): string {
  const hash = keccak_256(Buffer.from(lowerHex40, "ascii"));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1] >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? lowerHex40[i].toUpperCase() : lowerHex40[i];
  }
  return out;
}

/**
 * Parses an execution-layer address: "0x" + 40 hex digits. All lower- or all upper-case hex is
 * accepted as is; mixed case must carry a valid EIP-55 checksum (it catches typos).
 */
export function parseExecutionAddress(address: string): Uint8Array {
  if (typeof address !== "string") throw badAddress(address, "not a string");
  if (!/^0x/.test(address)) throw badAddress(address, 'must start with "0x"');
  const h = address.slice(2);
  if (!/^[0-9a-fA-F]*$/.test(h)) throw badAddress(address, "not hex");
  if (h.length !== 40) throw badAddress(address, `must be 20 bytes (40 hex digits), got ${h.length} hex digits`);
  const lower = h.toLowerCase();
  if (h !== lower && h !== h.toUpperCase()) {
    const expected = toChecksumAddress(lower);
    if (expected.slice(2) !== h) throw badAddress(address, `bad EIP-55 checksum (did you mean ${expected}?)`);
  }
  return new Uint8Array(Buffer.from(lower, "hex"));
}

/** 0x01 (or 0x02 when compounding) ‖ 11 zero bytes ‖ the 20-byte execution address. */
export function withdrawalCredentials(opts: { address: string; compounding: boolean }): Uint8Array {
  const address = parseExecutionAddress(opts.address);
  const wc = new Uint8Array(32);
  wc[0] = opts.compounding ? COMPOUNDING_WITHDRAWAL_PREFIX : ETH1_ADDRESS_WITHDRAWAL_PREFIX;
  wc.set(address, 12);
  return wc;
}

export interface DepositOptions {
  /** 32 bytes. */
  withdrawalCredentials: Uint8Array;
  /** Gwei, an integer in [1 ETH, 2048 ETH]. */
  amountGwei: number;
  /** A resolved network or a --network value; its genesis fork version is signed over. */
  network: Network | string;
}

/** The DEPOSIT signing domain of a network: compute_domain(DOMAIN_DEPOSIT, genesis fork version, ZERO_ROOT). */
export function depositDomain(genesisForkVersion: Uint8Array): Uint8Array {
  return computeDomain(DomainType.DEPOSIT, genesisForkVersion, ZERO_ROOT);
}

/** Signs a deposit with a 32-byte BLS secret and returns its deposit-cli deposit_data entry. */
export function buildDepositData(secret: Uint8Array, opts: DepositOptions): DepositDataJson {
  const network = typeof opts.network === "string" ? resolveNetwork(opts.network) : opts.network;
  const { withdrawalCredentials: wc, amountGwei } = opts;
  if (!(wc instanceof Uint8Array) || wc.length !== 32) {
    throw new VigilError("bad_request", "INVALID_WITHDRAWAL_CREDENTIALS", "withdrawal credentials must be 32 bytes");
  }
  if (!Number.isSafeInteger(amountGwei) || amountGwei < MIN_DEPOSIT_GWEI || amountGwei > MAX_DEPOSIT_GWEI) {
    throw new VigilError(
      "bad_request",
      "INVALID_AMOUNT",
      `deposit amount must be an integer number of Gwei from ${MIN_DEPOSIT_GWEI} (1 ETH) to ${MAX_DEPOSIT_GWEI} (2048 ETH), got ${amountGwei}`,
    );
  }
  if (!(secret instanceof Uint8Array) || secret.length !== 32) {
    throw new VigilError("bad_request", "INVALID_SECRET", "secret must be 32 bytes");
  }
  let sk: SecretKey;
  try {
    sk = SecretKey.fromBytes(secret);
  } catch {
    throw new VigilError("bad_request", "INVALID_SECRET", "secret is not a valid BLS secret key");
  }
  const pubkey = sk.toPublicKey().toBytes();
  const message = { pubkey, withdrawalCredentials: wc, amount: amountGwei };
  const messageRoot = ssz.phase0.DepositMessage.hashTreeRoot(message);
  const signingRoot = computeSigningRoot(messageRoot, depositDomain(network.genesisForkVersion));
  const signature = sk.sign(signingRoot).toBytes();
  const dataRoot = ssz.phase0.DepositData.hashTreeRoot({ ...message, signature });
  return {
    pubkey: hex(pubkey),
    withdrawal_credentials: hex(wc),
    amount: amountGwei,
    signature: hex(signature),
    deposit_message_root: hex(messageRoot),
    deposit_data_root: hex(dataRoot),
    fork_version: hex(network.genesisForkVersion),
    network_name: network.name,
    deposit_cli_version: DEPOSIT_CLI_VERSION,
  };
}
