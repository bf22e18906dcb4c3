// The HTTP contract (Web3Signer eth2 API) on a real listening server with a real SQLite store.
import "./helpers/preset-minimal.js";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PublicKey, Signature, verify } from "@chainsafe/blst";
import fs from "node:fs";
import path from "node:path";
import { encryptKeystore } from "../src/keys/keystore.js";
import { hexBytes, interopKeys, lodestarSamples, signingVectors } from "./helpers/keys.js";
import { post, startTestServer, tempDir, type TestServer } from "./helpers/server.js";
import net from "node:net";
import { nonIntegerNumber, SIGN_BODY_LIMIT, SIGN_BYTES_IN_FLIGHT } from "../src/server/routes/eth2.js";

const keys = interopKeys();
const pk0 = keys[0].pubkey;
const samples = lodestarSamples();
const sample = (file: string): Record<string, any> => structuredClone(samples.find((s) => s.file === file)!.body);

function assertSignatureOver(signatureHex: string, root: string, pubkey: string): void {
  assert.ok(verify(hexBytes(root), PublicKey.fromBytes(hexBytes(pubkey)), Signature.fromBytes(hexBytes(signatureHex))), "signature verifies");
}

function assertError(res: { status: number; json: any; text: string }, status: number, code?: string): void {
  assert.equal(res.status, status, res.text);
  assert.equal(typeof res.json?.code, "string", res.text);
  assert.equal(typeof res.json?.message, "string", res.text);
  if (code) assert.equal(res.json.code, code, res.text);
  assert.ok(!("signature" in res.json), "no signature in an error");
}

describe("signing the requests a real client sends (Lodestar samples)", () => {
  // One fresh signer per sample: three samples are blocks at slot 1 from different devnet runs.
  for (const { file, body } of samples) {
    it(`${file}: 200 with a signature over the client's signing root`, async () => {
      const server = await startTestServer("minimal", [keys[0].secret]);
      try {
        const res = await post(`${server.url}/api/v1/eth2/sign/${pk0}`, body, { accept: "*/*" });
        assert.equal(res.status, 200, res.text);
        assert.match(res.type, /application\/json/);
        assertSignatureOver(res.json.signature, body.signingRoot as string, pk0);
      } finally {
        await server.close();
      }
    });
  }
});

describe("response format by Accept header", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer("minimal", [keys[0].secret]);
  });
  after(() => server.close());
  const body = sample("RANDAO_REVEAL.json");
  const cases: [string | undefined, "json" | "text"][] = [
    [undefined, "json"],
    ["*/*", "json"],
    ["application/json", "json"],
    ["text/plain", "text"],
    ["text/plain, application/json", "json"],
    ["text/*", "text"],
    ["text/plain;q=0.9, */*;q=0.1", "json"],
  ];
  for (const [accept, want] of cases) {
    it(`Accept: ${accept ?? "(none)"} → ${want}`, async () => {
      const res = await fetch(`${server.url}/api/v1/eth2/sign/${pk0}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(accept ? { accept } : {}) },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const signature = want === "json" ? JSON.parse(text).signature : text;
      if (want === "text") assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      assertSignatureOver(signature, body.signingRoot, pk0);
    });
  }
});

for (const file of ["web3signer-sign-examples.json", "remote-signing-api-sign-examples.json"] as const) {
  describe(`spec examples over HTTP: ${file}`, () => {
    const vectors = signingVectors(file);
    const pubkey = vectors.key.public_key;
    for (const c of vectors.cases.filter((x) => x.signing_root_reproduced)) {
      it(`${c.name}`, async () => {
        const server = await startTestServer("minimal", [hexBytes(vectors.key.secret_key)]);
        try {
          const res = await post(`${server.url}/api/v1/eth2/sign/${pubkey}`, c.request);
          const named = (c.request.deposit ?? c.request.validator_registration) as { pubkey?: string } | undefined;
          if (named?.pubkey && named.pubkey !== pubkey) {
            // The example names another validator's key: Vigil will not sign it with this one.
            assertError(res, 400, "PUBKEY_MISMATCH");
          } else if (c.type === "VOLUNTARY_EXIT") {
            // The default policy holds exits for approval and names no approvers: refused (403).
            assertError(res, 403, "POLICY_REFUSED");
            assert.equal(res.json.rule_id, "exits-need-approval");
          } else {
            assert.equal(res.status, 200, res.text);
            assert.equal(res.json.signature, c.derived_signature);
          }
        } finally {
          await server.close();
        }
      });
    }
  });
}

describe("bad input: a clear 4xx with {code, message}, never a signature", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer("minimal", [keys[0].secret, keys[1].secret]);
    // pin the devnet's genesis validators root with one good request
    const res = await post(`${server.url}/api/v1/eth2/sign/${pk0}`, sample("AGGREGATION_SLOT.json"));
    assert.equal(res.status, 200);
  });
  after(() => server.close());
  const url = (pk = pk0) => `${server.url}/api/v1/eth2/sign/${pk}`;

  it("malformed JSON → 400 INVALID_JSON", async () => assertError(await post(url(), "{bad"), 400, "INVALID_JSON"));
  it("empty body → 400", async () => assertError(await post(url(), ""), 400));
  it("a JSON array or string → 400 INVALID_BODY", async () => {
    assertError(await post(url(), [1, 2]), 400, "INVALID_BODY");
    assertError(await post(url(), '"x"'), 400, "INVALID_BODY");
  });
  it("unknown type → 400 UNKNOWN_TYPE", async () => assertError(await post(url(), { type: "BLOCK_V3" }), 400, "UNKNOWN_TYPE"));
  it("missing payload → 400", async () => assertError(await post(url(), { type: "ATTESTATION", fork_info: sample("ATTESTATION.json").fork_info }), 400, "INVALID_BODY"));
  it("missing field → 400 naming it", async () => {
    const b = sample("ATTESTATION.json");
    delete b.attestation.target;
    const res = await post(url(), b);
    assertError(res, 400, "INVALID_FIELD");
    assert.match(res.json.message, /attestation\.target/);
  });
  it("uint64 out of range, negative, hex or fractional → 400", async () => {
    for (const slot of ["18446744073709551616", "-1", "0x10", "1.5", ""]) {
      const b = sample("ATTESTATION.json");
      b.attestation.slot = slot;
      assertError(await post(url(), b), 400, "INVALID_FIELD");
    }
  });
  it("a JSON number with a sign, fraction or exponent → 400 INVALID_NUMBER (JSON.parse would make it an integer); a plain integer is signed", async () => {
    const withSlot = (raw: string): string => {
      const b = sample("ATTESTATION.json");
      b.attestation.slot = "SLOT";
      return JSON.stringify(b).replace('"SLOT"', raw);
    };
    const slot = sample("ATTESTATION.json").attestation.slot as string;
    assert.equal(slot, "0", "the sample attests at slot 0: each spelling below is 0 once parsed");
    for (const raw of ["0.0", "0e0", "0E+0", "-0", "1e-400", "10e-1000", "0.1e-400"]) {
      assert.ok(JSON.parse(raw) === 0, raw); // -0 === 0
      const res = await post(url(), withSlot(raw));
      assertError(res, 400, "INVALID_NUMBER");
      assert.ok(res.json.message.startsWith(raw), res.json.message);
    }
    const plain = await post(url(), withSlot(slot));
    assert.equal(plain.status, 200, plain.text);
    assert.match(plain.json.signature, /^0x[0-9a-f]{192}$/);
  });
  it("nonIntegerNumber finds numbers only outside strings", () => {
    const table: [string, string | null][] = [
      ['{"a":1,"b":[2,3],"c":true,"d":false,"e":null}', null],
      ['{"a":"1.5e3","b":"-1","c":"x\\"1.5"}', null], // inside strings (an escaped quote included)
      ['{"a":"x\\\\","b":1.5}', "1.5"], // a string ending in an escaped backslash
      ['{"a": 12.5 }', "12.5"],
      ['{"a":[1,2e3]}', "2e3"],
      ['{"a":1E+2}', "1E+2"],
      ['{"a":-7}', "-7"],
      ["0.1", "0.1"],
    ];
    for (const [text, want] of table) assert.equal(nonIntegerNumber(text), want, text);
  });
  it("a protected slot beyond 2^53-1 → 400 VALUE_OUT_OF_RANGE", async () => {
    const b = sample("BLOCK_V2.BELLATRIX.json");
    delete b.signingRoot;
    b.beacon_block.block_header.slot = "18446744073709551615";
    assertError(await post(url(), b), 400);
  });
  it("wrong hex length → 400", async () => {
    const b = sample("ATTESTATION.json");
    b.attestation.beacon_block_root = "0x1234";
    assertError(await post(url(), b), 400, "INVALID_FIELD");
  });
  it("a signing root that is not the content's → 400 SIGNING_ROOT_MISMATCH", async () => {
    const b = sample("RANDAO_REVEAL.json");
    b.signingRoot = "0x" + "22".repeat(32);
    assertError(await post(url(), b), 400, "SIGNING_ROOT_MISMATCH");
  });
  it("another chain's genesis validators root → 400 WRONG_NETWORK", async () => {
    const b = sample("RANDAO_REVEAL.json");
    delete b.signingRoot;
    b.fork_info.genesis_validators_root = "0x" + "33".repeat(32);
    assertError(await post(url(), b), 400, "WRONG_NETWORK");
  });
  it("invalid pubkey in the path → 400; unknown key → 404 KEY_NOT_FOUND", async () => {
    assertError(await post(url("0x1234"), sample("RANDAO_REVEAL.json")), 400, "INVALID_PUBKEY");
    assertError(await post(url(keys[2].pubkey), sample("RANDAO_REVEAL.json")), 404, "KEY_NOT_FOUND");
  });
  it("registration for another key → 400 PUBKEY_MISMATCH", async () => {
    assertError(await post(url(keys[1].pubkey), sample("VALIDATOR_REGISTRATION.json")), 400, "PUBKEY_MISMATCH");
  });
  it("wrong content type → 415 (text → 400); oversized body → 413; unknown route → 404, all JSON", async () => {
    const r1 = await fetch(url(), { method: "POST", headers: { "content-type": "application/xml" }, body: "<x/>" });
    assert.equal(r1.status, 415);
    assert.equal((await r1.json()).code, "UNSUPPORTED_MEDIA_TYPE");
    assertError(await post(url(), "x", { "content-type": "text/plain" }), 400, "INVALID_BODY");
    const big = JSON.stringify({ type: "ATTESTATION", pad: "x".repeat(5 * 1024 * 1024) });
    assertError(await post(url(), big), 413, "BODY_TOO_LARGE");
    const r3 = await fetch(`${server.url}/api/v1/eth2/nothing`);
    assert.equal(r3.status, 404);
    assert.equal((await r3.json()).code, "NOT_FOUND");
  });
  it("sign bodies are bounded in bytes in flight: beyond 64 MiB waiting, 503 VAULT_BUSY before the body is read", async () => {
    const { port } = new URL(server.url);
    // 64 requests that announce 1 MiB bodies and send nothing more hold the whole budget.
    const holders = await Promise.all(
      Array.from({ length: SIGN_BYTES_IN_FLIGHT / SIGN_BODY_LIMIT }, () =>
        new Promise<net.Socket>((resolve) => {
          const sock = net.connect(Number(port), "127.0.0.1", () => {
            sock.write(`POST /api/v1/eth2/sign/${keys[0].pubkey} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${SIGN_BODY_LIMIT}\r\n\r\n{`);
            resolve(sock);
          });
        }),
      ),
    );
    try {
      let busy = 0;
      for (let i = 0; i < 20 && busy === 0; i++) {
        const res = await post(url(), sample("RANDAO_REVEAL.json"));
        if (res.status === 503) {
          assert.equal(res.json.code, "VAULT_BUSY");
          busy++;
        } else await new Promise((r) => setTimeout(r, 20)); // the holders' headers may still be on their way
      }
      assert.equal(busy, 1, "a request beyond the budget is turned away");
    } finally {
      for (const h of holders) h.destroy();
    }
    // Their budget comes back when they go.
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      const res = await post(url(), sample("RANDAO_REVEAL.json"));
      status = res.status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, 200);
  });
  /** Writes `text` on a new loopback connection and destroys it `afterMs` later. */
  const sendAndDrop = (text: string, afterMs: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const sock = net.connect(Number(new URL(server.url).port), "127.0.0.1", () => {
        sock.write(text);
        setTimeout(() => {
          sock.destroy();
          resolve();
        }, afterMs);
      });
      sock.on("error", () => undefined);
    });
  /** The vault's sign takes `ms` longer (injected delay) until the returned function is called. */
  const slowVault = (ms: number): (() => void) => {
    const vault = server.vault as unknown as { sign: (...a: unknown[]) => Promise<unknown> };
    const realSign = vault.sign;
    vault.sign = async (...a: unknown[]) => {
      await new Promise((r) => setTimeout(r, ms));
      return realSign.apply(server.vault, a);
    };
    return () => (vault.sign = realSign);
  };
  const inFlight = async (): Promise<number> => Number(/^vigil_sign_body_bytes_in_flight (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())![1]);
  const signHead = (len: number): string => `POST /api/v1/eth2/sign/${keys[0].pubkey} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`;
  it("a budget share comes back however the request ends: pipelined requests cut off with their bodies half sent", async () => {
    // The first request of each connection takes 60 ms in the vault, so the connection dies while
    // its answer is still owed and the second request's body is half sent.
    const restore = slowVault(60);
    const one = JSON.stringify(sample("RANDAO_REVEAL.json"));
    try {
      for (let i = 0; i < SIGN_BYTES_IN_FLIGHT / SIGN_BODY_LIMIT + 2; i++) {
        await sendAndDrop(signHead(Buffer.byteLength(one)) + one + signHead(SIGN_BODY_LIMIT) + "{", 5);
      }
      await new Promise((r) => setTimeout(r, 200)); // the owed answers are done
    } finally {
      restore();
    }
    let left = -1;
    for (let i = 0; i < 50 && left !== 0; i++) {
      left = await inFlight();
      if (left !== 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(left, 0, "every share of the budget came back");
    const status = (await post(url(), sample("RANDAO_REVEAL.json"))).status;
    assert.equal(status, 200, "no share of the budget stayed taken");
  });
  it("a body the handler still holds counts until the handler is done, even when its client has gone", async () => {
    const restore = slowVault(400);
    const one = JSON.stringify(sample("RANDAO_REVEAL.json"));
    const body = `${one.slice(0, -1)},"pad":"${"p".repeat(300_000)}"}`;
    try {
      for (let i = 0; i < 3; i++) await sendAndDrop(signHead(Buffer.byteLength(body)) + body, 30);
      assert.ok((await inFlight()) >= 3 * 300_000, "the three bodies still count while their handlers run");
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(await inFlight(), 0);
    } finally {
      restore();
    }
  });
  it("a body nested too deep, or with too many values, is refused before it reaches the vault; over 1 MiB, 413", async () => {
    // A valid request with one more top-level field, which the decoder would not look at.
    const valid = JSON.stringify(sample("RANDAO_REVEAL.json"));
    const withField = (x: string) => `${valid.slice(0, -1)},"x":${x}}`;
    assert.equal((await post(url(), withField("[[1]]"))).status, 200, "an extra top-level field alone is no error");
    const deep = await post(url(), withField(`${"[".repeat(100)}${"]".repeat(100)}`));
    assertError(deep, 400, "INVALID_BODY");
    assert.match(deep.json.message, /nests deeper than 32/);
    const wide = await post(url(), withField(JSON.stringify(new Array(250_000).fill(0))));
    assertError(wide, 400, "INVALID_BODY");
    assert.match(wide.json.message, /more than 200000 values/);
    const big = JSON.stringify({ type: "RANDAO_REVEAL", pad: "x".repeat(SIGN_BODY_LIMIT) });
    assertError(await post(url(), big), 413, "BODY_TOO_LARGE");
  });
  it("requests the HTTP parser or the router cannot read still get a JSON {code, message}", async () => {
    const { port } = new URL(server.url);
    const raw = (text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const sock = net.connect(Number(port), "127.0.0.1", () => sock.write(text));
        let got = "";
        sock.on("data", (d) => (got += d));
        sock.on("end", () => resolve(got));
        sock.on("error", reject);
      });
    const parse = (res: string) => ({ status: Number(res.split(" ")[1]), body: JSON.parse(res.slice(res.indexOf("\r\n\r\n") + 4)) });
    const garbage = parse(await raw("GARBAGE\r\n\r\n"));
    assert.equal(garbage.status, 400);
    assert.equal(garbage.body.code, "BAD_REQUEST");
    const badLength = parse(await raw("POST /upcheck HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"));
    assert.equal(badLength.status, 400);
    assert.equal(typeof badLength.body.message, "string");
    const bigHeaders = parse(await raw(`GET /upcheck HTTP/1.1\r\nHost: x\r\nX-Pad: ${"p".repeat(20_000)}\r\n\r\n`));
    assert.equal(bigHeaders.status, 431);
    assert.equal(bigHeaders.body.code, "HEADERS_TOO_LARGE");
    const badUrl = await fetch(`${server.url}/api/v1/eth2/sign/%zz`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(badUrl.status, 400);
    const body = await badUrl.json();
    assert.deepEqual(Object.keys(body).sort(), ["code", "message"]);
  });
  it("an unknown request type is counted under type=INVALID, not as a new metric series", async () => {
    assertError(await post(url(), { type: "MADE_UP_TYPE_42" }), 400, "UNKNOWN_TYPE");
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.doesNotMatch(text, /MADE_UP_TYPE_42/);
    assert.match(text, /vigil_sign_requests_total\{type="INVALID",outcome="UNKNOWN_TYPE"\} [1-9]/);
  });
  it("mutated client requests never produce a 5xx or a wrong signature (bounded fuzz)", async () => {
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const junk = [null, true, -1, 1.5, "", "0x", "0xzz", "x".repeat(300), [], {}, "18446744073709551616", "999999999999"];
    const paths = (o: any, prefix: string[] = []): string[][] =>
      o && typeof o === "object" ? Object.keys(o).flatMap((k) => [[...prefix, k], ...paths(o[k], [...prefix, k])]) : [];
    for (let i = 0; i < 400; i++) {
      const { body } = samples[rand(samples.length)];
      const b = structuredClone(body) as any;
      const ps = paths(b);
      const p = ps[rand(ps.length)];
      let parent = b;
      for (const k of p.slice(0, -1)) parent = parent[k];
      if (rand(3) === 0) delete parent[p.at(-1)!];
      else parent[p.at(-1)!] = junk[rand(junk.length)];
      const signer = keys[rand(2)].pubkey;
      const res = await post(url(signer), b);
      assert.ok(res.status < 500, `5xx for ${JSON.stringify(p)}: ${res.text}`);
      if (res.status === 200) {
        // One mutation: either it removed the client's root (content unchanged) or it hit
        // something outside the signed content. Either way the signature is over the original root.
        assertSignatureOver(res.json.signature, body.signingRoot as string, signer);
      } else {
        assert.equal(typeof res.json?.code, "string", res.text);
      }
    }
  });
});

describe("slashing protection over HTTP", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer("minimal", [keys[0].secret]);
  });
  after(() => server.close());
  const url = () => `${server.url}/api/v1/eth2/sign/${pk0}`;
  const attestation = (source: number, target: number, root: string) => {
    const b = sample("ATTESTATION.json");
    delete b.signingRoot;
    b.attestation.source.epoch = String(source);
    b.attestation.target.epoch = String(target);
    b.attestation.beacon_block_root = root;
    return b;
  };

  it("racing conflicting attestations: exactly one is signed, the rest get 412", async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => post(url(), attestation(2, 3, "0x" + (i + 1).toString(16).padStart(64, "0")))),
    );
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    for (const r of results.filter((x) => x.status !== 200)) assertError(r, 412, "DOUBLE_VOTE");
  });
  it("an identical request is signed again (same signing root)", async () => {
    const b = attestation(4, 5, "0x" + "aa".repeat(32));
    const first = await post(url(), b);
    const second = await post(url(), b);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(first.json.signature, second.json.signature);
  });
  it("surrounding and surrounded votes → 412 with the rule", async () => {
    assert.equal((await post(url(), attestation(10, 20, "0x" + "bb".repeat(32)))).status, 200);
    assertError(await post(url(), attestation(9, 21, "0x" + "bc".repeat(32))), 412, "SURROUNDING_VOTE");
    assertError(await post(url(), attestation(11, 19, "0x" + "bd".repeat(32))), 412, "SURROUNDED_VOTE");
  });
  it("two different blocks at one slot → 412 DOUBLE_BLOCK_PROPOSAL", async () => {
    const b = sample("BLOCK_V2.BELLATRIX.json");
    delete b.signingRoot;
    assert.equal((await post(url(), b)).status, 200);
    b.beacon_block.block_header.body_root = "0x" + "44".repeat(32);
    assertError(await post(url(), b), 412, "DOUBLE_BLOCK_PROPOSAL");
  });
});

describe("keys, health, reload and metrics endpoints", () => {
  it("publicKeys lists the loaded keys; upcheck says OK; healthcheck is UP", async () => {
    const server = await startTestServer("minimal", [keys[0].secret, keys[1].secret]);
    try {
      const pks = await (await fetch(`${server.url}/api/v1/eth2/publicKeys`)).json();
      assert.deepEqual([...pks].sort(), [keys[0].pubkey, keys[1].pubkey].sort());
      const up = await fetch(`${server.url}/upcheck`);
      assert.equal(up.status, 200);
      assert.equal(await up.text(), "OK");
      const upJson = await fetch(`${server.url}/upcheck`, { headers: { accept: "application/json" } });
      assert.match(upJson.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(await upJson.json(), { status: "OK" });
      const health = await fetch(`${server.url}/healthcheck`);
      assert.equal(health.status, 200);
      assert.equal((await health.json()).outcome, "UP");
    } finally {
      await server.close();
    }
  });
  it("healthcheck is 503 while no key is loaded; reload picks up new keystores (202, then GET /reload)", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "password.txt"), "reload-test");
    const keystoreDir = path.join(dir, "keystores");
    fs.mkdirSync(keystoreDir);
    const server = await startTestServer("minimal", [], { keystores: { dir: keystoreDir, passwordFile: path.join(dir, "password.txt") } });
    try {
      const down = await fetch(`${server.url}/healthcheck`);
      assert.equal(down.status, 503);
      assert.equal((await down.json()).outcome, "DOWN");
      assert.equal((await (await fetch(`${server.url}/reload`)).json()).status, "idle");
      const keystore = await encryptKeystore(keys[2].secret, "reload-test", { kdf: "pbkdf2" });
      fs.writeFileSync(path.join(keystoreDir, "k2.json"), JSON.stringify(keystore));
      const accepted = await fetch(`${server.url}/reload`, { method: "POST" });
      assert.equal(accepted.status, 202);
      let state = "running";
      for (let i = 0; i < 50 && state === "running"; i++) {
        await new Promise((r) => setTimeout(r, 20));
        state = (await (await fetch(`${server.url}/reload`)).json()).status;
      }
      assert.equal(state, "completed");
      assert.deepEqual(await (await fetch(`${server.url}/api/v1/eth2/publicKeys`)).json(), [keys[2].pubkey]);
      assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it("metrics count signatures and refusals by type", async () => {
    const server = await startTestServer("minimal", [keys[0].secret]);
    try {
      await post(`${server.url}/api/v1/eth2/sign/${pk0}`, sample("RANDAO_REVEAL.json"));
      await post(`${server.url}/api/v1/eth2/sign/${pk0}`, { type: "RANDAO_REVEAL" });
      const text = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(text, /vigil_sign_requests_total\{type="RANDAO_REVEAL",outcome="signed"\} 1/);
      assert.match(text, /vigil_sign_requests_total\{type="RANDAO_REVEAL",outcome="INVALID_BODY"\} 1/);
      assert.match(text, /vigil_keys_loaded 1/);
    } finally {
      await server.close();
    }
  });
  it("metrics show the vault's work: protection commits, BLS threads, the audit log, the vault process", async () => {
    const server = await startTestServer("minimal", [keys[0].secret]);
    server.vault.useSigningThreads(2); // as in the vault process
    const scrape = async (): Promise<Map<string, number>> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return new Map([...text.matchAll(/^(vigil_(?:vault|protection|bls|audit|prune)_[a-z_]+) (\S+)$/gm)].map((m) => [m[1], Number(m[2])]));
    };
    try {
      const before = await scrape();
      assert.equal(before.get("vigil_bls_threads"), 2);
      assert.equal(before.get("vigil_audit_head_seq"), -1, "a new audit log is empty");
      const attestation = sample("ATTESTATION.json");
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk0}`, attestation)).status, 200);
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk0}`, sample("RANDAO_REVEAL.json"))).status, 200);
      const after = await scrape();
      const delta = (name: string): number => after.get(name)! - before.get(name)!;
      assert.equal(delta("vigil_protection_decisions_total"), 1, "the attestation was checked and recorded; a RANDAO reveal has no slashing rule");
      assert.equal(delta("vigil_protection_group_commits_total"), 1);
      assert.ok(delta("vigil_protection_wal_syncs_total") >= 1, "the commit was made durable");
      assert.equal(delta("vigil_bls_signatures_total"), 2);
      assert.ok(delta("vigil_bls_batches_total") >= 1 && delta("vigil_bls_batches_total") <= 2);
      assert.equal(after.get("vigil_bls_queued_jobs"), 0);
      assert.equal(delta("vigil_audit_records_total"), 2);
      assert.ok(delta("vigil_audit_syncs_total") >= 1);
      assert.equal(after.get("vigil_audit_head_seq"), 1, "entries 0 and 1 are durable");
      assert.ok(after.get("vigil_vault_cpu_seconds_total")! > 0 && delta("vigil_vault_cpu_seconds_total") >= 0);
      assert.ok(after.get("vigil_vault_resident_memory_bytes")! > 10e6);
      assert.equal(after.get("vigil_prune_runs_succeeded_total"), 0, "not pruning without --prune-keep-epochs");
      // a refusal (the same attestation with another root: a double vote) is a decision too, and is audited
      const refused = await post(`${server.url}/api/v1/eth2/sign/${pk0}`, { ...attestation, signingRoot: undefined, attestation: { ...attestation.attestation, beacon_block_root: "0x" + "11".repeat(32) } });
      assert.equal(refused.status, 412, refused.text);
      const last = await scrape();
      assert.equal(last.get("vigil_protection_decisions_total")! - after.get("vigil_protection_decisions_total")!, 1);
      assert.equal(last.get("vigil_bls_signatures_total"), after.get("vigil_bls_signatures_total"), "nothing signed");
      assert.equal(last.get("vigil_audit_records_total")! - after.get("vigil_audit_records_total")!, 1);
    } finally {
      await server.close();
    }
  });
});
