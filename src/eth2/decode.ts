/**
 * Decoding a Web3Signer sign request body ({type, <payload>, fork_info?, signingRoot?}) into
 * a typed message. Nothing here trusts the client's signing root: it is only compared.
 */
import "./hasher.js";
import { ContainerType } from "@chainsafe/ssz";
import { ssz } from "@lodestar/types";
import { badRequest } from "../errors.js";
import { fromStrictJson, parseHex } from "./json.js";
import { REQUEST_TYPES, type DecodedMessage, type RequestType } from "./request.js";
import { requestModules } from "./requests/index.js";

/** fork_info as the remote-signing API defines it. */
const ForkInfo = new ContainerType(
  { fork: ssz.phase0.Fork, genesisValidatorsRoot: ssz.Root },
  { typeName: "ForkInfo", jsonCase: "eth2" },
);

export interface ForkInfo {
  fork: { previousVersion: Uint8Array; currentVersion: Uint8Array; epoch: bigint };
  genesisValidatorsRoot: Uint8Array;
}

export interface SignRequest {
  type: RequestType;
  message: DecodedMessage;
  forkInfo: ForkInfo | null;
  /** The signing root the client computed, if it sent one (`signingRoot` or `signing_root`). */
  clientSigningRoot: Uint8Array | null;
}

export function decodeSignRequest(body: unknown, slotsPerEpoch: number): SignRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest("INVALID_BODY", "the request body must be a JSON object");
  }
  const obj = body as Record<string, unknown>;
  const type = obj.type;
  if (typeof type !== "string") throw badRequest("INVALID_BODY", "missing \"type\"");
  const module = requestModules.get(type as RequestType);
  if (!module) {
    throw badRequest("UNKNOWN_TYPE", `unknown type ${JSON.stringify(type).slice(0, 60)}; expected one of ${REQUEST_TYPES.join(", ")}`);
  }
  const payload = obj[module.payloadKey];
  if (payload === undefined) throw badRequest("INVALID_BODY", `type ${type} needs "${module.payloadKey}"`);

  const rawRoot = obj.signingRoot ?? obj.signing_root;
  const clientSigningRoot = rawRoot === undefined || rawRoot === null ? null : parseHex(rawRoot, "signingRoot", 32);

  let forkInfo: ForkInfo | null = null;
  if (obj.fork_info !== undefined && obj.fork_info !== null) {
    forkInfo = fromStrictJson(ForkInfo, obj.fork_info, "fork_info") as ForkInfo;
  } else if (module.needsForkInfo) {
    throw badRequest("MISSING_FORK_INFO", `type ${type} needs "fork_info"`);
  }

  const message = module.decode(payload, slotsPerEpoch);
  return { type: module.type, message, forkInfo, clientSigningRoot };
}
