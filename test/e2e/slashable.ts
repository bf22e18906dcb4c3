// The slashable-pair checker lives in test/helpers/slashable.ts (shared with the HA tests).
export { describeViolations, findSlashable, type Violation } from "../helpers/slashable.js";
export type { Interchange, InterchangeAttestation, InterchangeBlock } from "../../src/slashing/types.js";
