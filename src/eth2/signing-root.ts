/**
 * The signing root Vigil signs, recomputed from the decoded message and checked against the
 * network it serves: its genesis validators root and, when known, its fork schedule.
 */
import { forkAtEpoch, isNetworkVersion, type Network } from "../config/networks.js";
import { badRequest } from "../errors.js";
import { computeDomain, computeSigningRoot, forkVersionAt, ZERO_ROOT } from "./domain.js";
import type { SignRequest } from "./decode.js";

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

/**
 * @param expectedGvr the genesis validators root requests must carry (the network's, or the one
 *   pinned in the protection database)
 */
export function computeRequestSigningRoot(req: SignRequest, network: Network, expectedGvr: Uint8Array): Uint8Array {
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
    const version = forkVersionAt(info.fork, msg.epoch);
    checkForkVersion(req, network, msg.epoch, version);
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

function checkForkVersion(req: SignRequest, network: Network, epoch: bigint, version: Uint8Array): void {
  const scheduled = forkAtEpoch(network, epoch);
  if (!scheduled) {
    // Schedule not known (devnet preset): the version must at least be one of this network's.
    if (!isNetworkVersion(network, version)) {
      throw badRequest("WRONG_NETWORK", `fork version ${hex(version)} is not one of ${network.name}'s fork versions`);
    }
    return;
  }
  let ok = eq(version, scheduled.version);
  if (!ok && req.type === "VOLUNTARY_EXIT") {
    // EIP-7044: from Deneb on, exits are verified with the Capella fork version.
    const capella = network.forks.find((f) => f.name === "capella");
    ok = capella !== undefined && capella.epoch !== null && epoch >= capella.epoch && eq(version, capella.version);
  }
  if (!ok) {
    throw badRequest(
      "FORK_VERSION_MISMATCH",
      `fork version ${hex(version)} for epoch ${epoch} does not match ${network.name}'s schedule (${scheduled.name}, ${hex(scheduled.version)})`,
    );
  }
  const declared = req.message.declaredFork;
  if (declared && req.type !== "BLOCK" && declared !== scheduled.name) {
    throw badRequest("FORK_MISMATCH", `${req.type} says ${declared.toUpperCase()} but epoch ${epoch} is ${scheduled.name.toUpperCase()} on ${network.name}`);
  }
}
