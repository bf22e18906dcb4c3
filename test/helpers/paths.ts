import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (tests run from dist/test/, compiled). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** The shared/ folder beside the repository (conformance data, peers). */
export const sharedDir = process.env.VIGIL_SHARED_DIR ?? path.resolve(repoRoot, "..", "shared");
export const conformanceDir = path.join(sharedDir, "conformance");
