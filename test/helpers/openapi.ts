// Response schemas from the Keymanager API spec (../shared/conformance/keymanager-api), with
// their $refs across YAML files inlined, checked with Ajv.
import fs from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import { parse as parseYaml } from "yaml";
import { conformanceDir } from "./paths.js";

export const keymanagerSpecDir = path.join(conformanceDir, "keymanager-api", "keymanager-APIs");

const cache = new Map<string, unknown>();
function load(file: string): unknown {
  if (!cache.has(file)) cache.set(file, parseYaml(fs.readFileSync(file, "utf8")));
  return cache.get(file);
}

function pointer(doc: unknown, ptr: string): unknown {
  return ptr
    .split("/")
    .filter(Boolean)
    .reduce((node: any, key) => node?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
}

/** Inline every $ref (relative file + JSON pointer) below `node`, read from `file`. */
function deref(node: unknown, file: string): unknown {
  if (Array.isArray(node)) return node.map((n) => deref(n, file));
  if (!node || typeof node !== "object") return node;
  const obj = node as Record<string, unknown>;
  if (typeof obj.$ref === "string") {
    const [rel, ptr = ""] = obj.$ref.split("#");
    const target = rel ? path.resolve(path.dirname(file), rel) : file;
    return deref(pointer(load(target), ptr), target);
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, deref(v, file)]));
}

const ajv = new Ajv({ strict: false, allErrors: true });

/** The JSON schema of `status` for `method` in apis/<apiFile>. */
export function responseSchema(apiFile: string, method: string, status: string): object {
  const file = path.join(keymanagerSpecDir, "apis", apiFile);
  const op = deref((load(file) as any)[method], file) as any;
  return op.responses[status].content["application/json"].schema;
}

/** Assert that `body` matches the spec's response schema. */
export function assertMatchesSpec(apiFile: string, method: string, status: string, body: unknown): void {
  const validate = ajv.compile(responseSchema(apiFile, method, status));
  if (!validate(body)) {
    throw new Error(`${method.toUpperCase()} ${apiFile} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 400)}`);
  }
}
