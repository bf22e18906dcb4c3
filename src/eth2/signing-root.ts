/**
 * The signing root Vigil signs, recomputed from the decoded message and checked against the
 * network it serves: its genesis validators root and, when known, its fork schedule.
 */
import { FORK_NAMES, forkAtEpoch, isNetworkVersion, type Network } from "../config/networks.js";
import { badRequest } from "../errors.js";
import { computeDomain, computeSigningRoot, forkVersionAt, ZERO_ROOT } from "./domain.js";
import type { SignRequest } from "./decode.js";

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

/**
 * @param expectedGvr the genesis validators root requests must carry (the network's, or the one
 *   pinned in the protection database)
 */
export function computeRequestSigningRoot(req: SignRequest, network: Network, expectedGvr: Uint8Array, nowMs: number = Date.now()): Uint8Array {
  const msg = req.message;
  let domain: Uint8Array;
  if (msg.epoch === "genesis") {
    // DEPOSIT and VALIDATOR_REGISTRATION: genesis fork version, zero genesis validators root.
    const version = msg.genesisForkVersion ?? network.genesisForkVersion;
    if (!eq(version, network.genesisForkVersion)) {
      throw badRequest(
        "WRONG_NETWORK",
        `genesis_fork_version ${hex(version)} is not ${network.name}'s (${hex(network.genesisForkVersion)})`,
      );
    }
    domain = computeDomain(msg.domainType, version, ZERO_ROOT);
  } else {
    const info = req.forkInfo;
    if (!info) throw badRequest("MISSING_FORK_INFO", `type ${req.type} needs "fork_info"`);
    if (!eq(info.genesisValidatorsRoot, expectedGvr)) {
      throw badRequest(
        "WRONG_NETWORK",
        `genesis_validators_root ${hex(info.genesisValidatorsRoot)} is not this signer's (${hex(expectedGvr)}, ${network.name})`,
      );
    }
    let version = req.type === "VOLUNTARY_EXIT" ? exitVersion(network, info.fork.currentVersion, nowMs) : null;
    if (version) {
      for (const v of [info.fork.previousVersion, info.fork.currentVersion]) {
        if (!isNetworkVersion(network, v)) throw badRequest("WRONG_NETWORK", `fork version ${hex(v)} is not one of ${network.name}'s fork versions`);
      }
    } else {
      version = forkVersionAt(info.fork, msg.epoch);
      checkForkVersion(req, network, msg.epoch, version);
    }
    domain = computeDomain(msg.domainType, version, info.genesisValidatorsRoot);
  }
  const signingRoot = computeSigningRoot(msg.objectRoot, domain);
  if (req.clientSigningRoot && !eq(req.clientSigningRoot, signingRoot)) {
    throw badRequest(
      "SIGNING_ROOT_MISMATCH",
      `the request's signing root ${hex(req.clientSigningRoot)} differs from the one computed from its content (${hex(signingRoot)})`,
    );
  }
  return signingRoot;
}

/**
 * EIP-7044 (Deneb's process_voluntary_exit): once the chain is at Deneb, an exit of any epoch is
 * verified with the Capella fork version, whatever fork_info says (as a network-aware Web3Signer
 * signs it). The chain is at Deneb when fork_info's current version is Deneb's or a later fork's,
 * or when the network's clock (genesis time known) has passed Deneb's scheduled epoch (every public
 * network has). Else null: the exit is signed at its own epoch's version, as before Deneb.
 */
function exitVersion(network: Network, currentVersion: Uint8Array, nowMs: number): Uint8Array | null {
  const capella = network.forks.find((f) => f.name === "capella");
  const deneb = network.forks.findIndex((f) => f.name === "deneb");
  if (!capella || deneb < 0) return null;
  if (network.forks.findIndex((f) => eq(f.version, currentVersion)) >= deneb) return capella.version;
  const denebEpoch = network.scheduleKnown ? network.forks[deneb].epoch : null;
  if (denebEpoch === null || network.genesisTime === null) return null;
  const epochNow = Math.floor((nowMs / 1000 - network.genesisTime) / (network.secondsPerSlot * network.slotsPerEpoch));
  return epochNow >= 0 && BigInt(epochNow) >= denebEpoch ? capella.version : null;
}

function checkForkVersion(req: SignRequest, network: Network, epoch: bigint, version: Uint8Array): void {
  const scheduled = forkAtEpoch(network, epoch);
  if (!scheduled) {
    // Schedule not known (devnet preset): the version must at least be one of this network's.
    if (!isNetworkVersion(network, version)) {
      throw badRequest("WRONG_NETWORK", `fork version ${hex(version)} is not one of ${network.name}'s fork versions`);
    }
    return;
  }
  if (!eq(version, scheduled.version)) {
    throw badRequest(
      "FORK_VERSION_MISMATCH",
      `fork version ${hex(version)} for epoch ${epoch} does not match ${network.name}'s schedule (${scheduled.name}, ${hex(scheduled.version)})`,
    );
  }
  const declared = req.message.declaredFork;
  if (declared && declared !== scheduled.name) {
    // BLOCK (deprecated) declares phase0: a later block sent as BLOCK would be signed without its later fields.
    throw badRequest("FORK_MISMATCH", `${req.type} says ${declared.toUpperCase()} but epoch ${epoch} is ${scheduled.name.toUpperCase()} on ${network.name}`);
  }
  const until = req.message.untilFork;
  if (until && forkRank(scheduled.name) > forkRank(until)) {
    throw badRequest("FORK_MISMATCH", `${req.type} is a message of forks up to ${until.toUpperCase()}, but epoch ${epoch} is ${scheduled.name.toUpperCase()} on ${network.name}`);
  }
}

/** Activation order of a fork; forks Vigil does not sign for come after all it does. */
function forkRank(name: string): number {
  const i = (FORK_NAMES as readonly string[]).indexOf(name);
  return i < 0 ? FORK_NAMES.length : i;
}
