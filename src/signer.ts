/**
 * The signing pipeline: decode → check network → protect + record → sign (BLS overlaps the
 * record's commit; no signature is returned before the decision is durable).
 * Knows nothing of HTTP; every refusal is a VigilError with a stable code.
 */
import type { Network } from "./config/networks.js";
import { badRequest, VigilError } from "./errors.js";
import { decodeSignRequest, type SignRequest } from "./eth2/decode.js";
import type { RequestType } from "./eth2/request.js";
import { computeRequestSigningRoot } from "./eth2/signing-root.js";
import type { KeyVault } from "./keys/vault.js";
import type { OnTentative, SlashingStore } from "./slashing/store/store.js";

export interface SignResult {
  type: RequestType;
  signingRoot: Uint8Array;
  signature: Uint8Array;
  summary: string;
}

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");

/** Slots and epochs the protection database records must be exact JS numbers. */
function protectedNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw badRequest("VALUE_OUT_OF_RANGE", `${what} ${v} is beyond what slashing protection accepts (2^53-1)`);
  }
  return Number(v);
}

export class Signer {
  /** The genesis validators root requests must carry: the network's, or pinned in the database. */
  private gvr: Uint8Array | null;

  constructor(
    readonly network: Network,
    private readonly store: SlashingStore,
    private readonly vault: KeyVault,
  ) {
    this.gvr = network.genesisValidatorsRoot;
  }

  /** Bind the protection database to the network (or load the pinned root of a custom network). */
  async init(): Promise<void> {
    if (this.gvr) {
      await this.store.bindGenesisValidatorsRoot(this.gvr);
    } else {
      this.gvr = await this.store.getGenesisValidatorsRoot();
    }
  }

  get genesisValidatorsRoot(): Uint8Array | null {
    return this.gvr;
  }

  /**
   * @param authorize the operator's policy, asked once the request is decoded and its signing
   *   root computed, before slashing protection records it; it throws to refuse.
   */
  async sign(
    pubkey: string,
    body: unknown,
    authorize?: (req: SignRequest, signingRoot: Uint8Array) => Promise<void>,
    /** Called once slashing protection allowed the request (possibly while its commit runs), as signing starts; its promise must settle before the signature is returned. */
    onDecided?: () => Promise<void>,
  ): Promise<SignResult> {
    const generation = this.vault.generation(pubkey);
    if (generation === undefined) throw new VigilError("not_found", "KEY_NOT_FOUND", `no key ${pubkey} is loaded`);
    const req = decodeSignRequest(body, this.network.slotsPerEpoch);
    const gvr = await this.expectedGvr(req);
    const signingRoot = computeRequestSigningRoot(req, this.network, gvr);
    const carried = req.message.pubkey;
    if (carried && hex(carried) !== pubkey) {
      throw badRequest("PUBKEY_MISMATCH", `the ${req.type} names pubkey ${hex(carried)}, not the signing key ${pubkey}`);
    }
    if (authorize) await authorize(req, signingRoot);
    // BLS signing (and onDecided) may start as soon as slashing protection has decided, while its
    // commit runs; the signature is returned only once that decision is durable.
    let started: Promise<[Uint8Array, void]> | null = null;
    const start = (): Promise<[Uint8Array, void]> => {
      if (started) return started;
      started = Promise.all([this.vault.signAsync(pubkey, signingRoot), onDecided?.()]);
      started.catch(() => undefined); // awaited below, unless the commit fails first
      return started;
    };
    await this.protect(pubkey, req, signingRoot, (d) => {
      if (d.allowed) start();
    });
    const [signature] = await start();
    // A key removed (Keymanager DELETE) while this request's commit was still running, even if loaded
    // again since: its signature must not leave after the DELETE's answer, whose history may lack it.
    // Its record stays: history of a message never signed is harmless.
    if (this.vault.generation(pubkey) !== generation) throw new VigilError("not_found", "KEY_NOT_FOUND", `key ${pubkey} was removed`);
    return { type: req.type, signingRoot, signature, summary: req.message.summary };
  }

  private async expectedGvr(req: SignRequest): Promise<Uint8Array> {
    if (this.gvr) return this.gvr;
    if (!req.forkInfo) return new Uint8Array(32); // DEPOSIT / VALIDATOR_REGISTRATION: not used
    // Custom network without a known root: pin the first one seen, atomically in the database.
    try {
      await this.store.bindGenesisValidatorsRoot(req.forkInfo.genesisValidatorsRoot);
    } catch (e) {
      if (!(e instanceof VigilError) || e.kind !== "bad_request") throw e;
    }
    this.gvr = await this.store.getGenesisValidatorsRoot();
    if (!this.gvr) throw new VigilError("unavailable", "STORE_UNAVAILABLE", "could not pin the genesis validators root");
    return this.gvr;
  }

  /** Resolves once the decision to sign is durably recorded (or at once when the type has no slashing rule); throws a refusal. */
  private async protect(pubkey: string, req: SignRequest, signingRoot: Uint8Array, onTentative: OnTentative): Promise<void> {
    const p = req.message.protection;
    if (!p) return;
    const decision =
      p.kind === "block"
        ? await this.store.checkAndRecordBlock(pubkey, protectedNumber(p.slot, "slot"), signingRoot, onTentative)
        : await this.store.checkAndRecordAttestation(
            pubkey,
            protectedNumber(p.sourceEpoch, "source epoch"),
            protectedNumber(p.targetEpoch, "target epoch"),
            signingRoot,
            onTentative,
          );
    if (!decision.allowed) throw new VigilError("slashing", decision.rule, decision.message);
  }
}
