#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=25 --no-allocation-site-pretenuring
/**
 * The `vigil` command. This entry imports nothing from Lodestar: each command first fixes the
 * SSZ preset from its network (LODESTAR_PRESET), then loads its implementation.
 */
import { Command, Option } from "commander";
import { choosePreset } from "../config/preset.js";
import { DEFAULTS, ENV, OptionsError, resolveStartOptions } from "../config/options.js";

function fail(err: unknown): never {
  const e = err as Error & { code?: string };
  const prefix = e.code && !(err instanceof OptionsError) && !e.message.startsWith(e.code) ? `${e.code}: ` : "";
  process.stderr.write(`vigil: ${prefix}${e.message}\n`);
  process.exit(1);
}

const program = new Command()
  .name("vigil")
  .description("Vigil: a validating remote signer for Ethereum validators (Web3Signer-compatible API)")
  .showHelpAfterError();

/** The options of `start`, shared by `doctor`. */
function startOptions(cmd: Command): Command {
  return cmd
    // VIGIL_NETWORK (like every VIGIL_* variable) is read by the options resolver, which skips empty values.
    .option("--network <name|path>", `mainnet, hoodi, sepolia, holesky, minimal, or a config.yaml (default ${DEFAULTS.network}; env ${ENV.network})`)
  .option("--keystores <dir>", "directory of EIP-2335 keystores (*.json)")
  .option("--passwords <dir>", "directory with one <keystore-basename>.txt password file per keystore")
  .option("--password-file <file>", "one password for every keystore")
  .option("--data-dir <dir>", `data directory: slashing-protection database, dev keys (default ${DEFAULTS.dataDir})`)
  .option("--host <address>", `address to listen on (default ${DEFAULTS.host})`)
  .option("--port <port>", `port to listen on (default ${DEFAULTS.port})`)
  .option("--log-level <level>", "fatal, error, warn, info, debug or trace (default info)")
  .option("--unlock <source>", "passphrase of the sealed key store <data-dir>/keys.vigil: prompt, stdin, file:<path> or env:<VAR>")
  .option("--keymanager-token-file <file>", "bearer token of the Keymanager API (default <data-dir>/api-token.txt, created 0600)")
  .option("--db-url <url>", "PostgreSQL protection database shared by several instances (postgres://…); default: SQLite in the data dir")
  .option("--db-schema <name>", "PostgreSQL schema for Vigil's tables (default public)")
  .option("--ha-group <name>", "active/standby group: only the holder of the group's lease signs (needs --db-url)")
  .option("--ha-lease-ms <ms>", "HA lease time-to-live (default 4000; failover within about this + 3 s)")
  .option("--prune-keep-epochs <n>", "prune the protection history at start and every 12 hours, keeping each validator's newest n epochs (default: never prune)")
    .option("--policy <file>", "operator policy (YAML); default: the policy accepted earlier, else the built-in one")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "private key of --tls-cert (PEM)")
    .option("--tls-client-ca <file>", "ask clients for certificates (policy identities by fingerprint)")
    .option("--config <file>", "YAML config file with any of these options (kebab-case keys)");
}

startOptions(program.command("start").description("Run the signer")).action(async (flags) => {
    try {
      const opts = resolveStartOptions(flags);
      choosePreset(opts.network);
      const { start } = await import("./start.js");
      await start(opts);
    } catch (e) {
      fail(e);
    }
  });

startOptions(program.command("doctor").description("Inspect a deployment (permissions, passwords at rest, listen address, clock, storage) and print fixes"))
  .option("--tls", "the signing API is served behind TLS with client authentication")
  .action(async (flags) => {
    try {
      const { doctorCommand } = await import("./doctor.js");
      await doctorCommand(flags);
    } catch (e) {
      fail(e);
    }
  });

const keys = program.command("keys").description("Validator keys: generate, recover, import into the sealed key store, export");

/** Options shared by `keys new` and `keys recover`. */
function keygenOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--count <n>", "number of validator keys", (v) => positiveInt(v, "--count"))
    .requiredOption("--withdrawal-address <0x…>", "execution address for withdrawals (0x01 credentials; 0x02 with --compounding)")
    .option("--compounding", "0x02 compounding withdrawal credentials (Electra)")
    .option("--amount <gwei>", "deposit amount in Gwei (default 32 ETH; 32-2048 ETH with --compounding)", (v) => positiveInt(v, "--amount"))
    .requiredOption("--network <name>", "network of the deposits (mainnet, hoodi, sepolia, holesky, or a config.yaml)")
    .requiredOption("--out <dir>", "output directory for keystores and deposit data")
    .option("--password-file <file>", "keystore password (default: prompt)")
    .option("--kdf <scrypt|pbkdf2>", "keystore KDF (default scrypt, EIP-2335's default cost)");
}

function positiveInt(v: string, name: string): number {
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new OptionsError(`${name} must be a whole number`);
  return Number(v);
}

async function promptPassword(): Promise<string> {
  const { readPassphrase } = await import("../keys/unlock.js");
  return readPassphrase("prompt", { prompt: "Keystore password: ", confirm: true });
}

keygenOptions(keys.command("new").description("Create a new 24-word mnemonic (shown once), EIP-2335 keystores and deposit data"))
  .action(async (flags) => {
    try {
      choosePreset(flags.network);
      const { keysNew } = await import("./keys-generate.js");
      await keysNew({ ...flags, amountGwei: flags.amount, passwordPrompt: promptPassword });
    } catch (e) {
      fail(e);
    }
  });

keygenOptions(keys.command("recover").description("Re-derive keystores and deposit data from an existing mnemonic"))
  .requiredOption("--mnemonic-file <file>", "file holding the mnemonic")
  .option("--from-index <i>", "first validator index (default 0)", (v) => positiveInt(v, "--from-index"), 0)
  .action(async (flags) => {
    try {
      choosePreset(flags.network);
      const { keysRecover } = await import("./keys-generate.js");
      await keysRecover({ ...flags, amountGwei: flags.amount, passwordPrompt: promptPassword });
    } catch (e) {
      fail(e);
    }
  });

keys
  .command("import <keystores-dir>")
  .description("Seal EIP-2335 keystores into the one-unlock key store <data-dir>/keys.vigil")
  .option("--passwords <dir>", "one <keystore-basename>.txt password file per keystore")
  .option("--password-file <file>", "one password for every keystore")
  .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
  .requiredOption("--unlock <source>", "key store passphrase: prompt, stdin, file:<path> or env:<VAR>")
  .action(async (dir: string, flags) => {
    try {
      const { keysImport } = await import("./keys-store.js");
      await keysImport({ keystores: dir, passwords: flags.passwords, passwordFile: flags.passwordFile, dataDir: flags.dataDir, unlock: flags.unlock });
    } catch (e) {
      fail(e);
    }
  });

keys
  .command("export")
  .description("Write keys from the sealed key store back out as standard EIP-2335 keystores")
  .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
  .requiredOption("--unlock <source>", "key store passphrase: prompt, stdin, file:<path> or env:<VAR>")
  .requiredOption("--out <dir>", "output directory")
  .requiredOption("--password-file <file>", "password for the exported keystores (file mode 0600)")
  .option("--pubkey <pubkeys...>", "only these keys")
  .option("--kdf <scrypt|pbkdf2>", "keystore KDF (default scrypt)")
  .action(async (flags) => {
    try {
      const { keysExport } = await import("./keys-store.js");
      await keysExport({ dataDir: flags.dataDir, unlock: flags.unlock, out: flags.out, passwordFile: flags.passwordFile, pubkeys: flags.pubkey, kdf: flags.kdf });
    } catch (e) {
      fail(e);
    }
  });

keys
  .command("list")
  .description("List the public keys in the sealed key store (no passphrase needed)")
  .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
  .action(async (flags) => {
    try {
      const { keysList } = await import("./keys-store.js");
      await keysList({ dataDir: flags.dataDir });
    } catch (e) {
      fail(e);
    }
  });

keys
  .command("passphrase")
  .description("Change the sealed key store's passphrase (every key re-sealed, with today's KDF parameters)")
  .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
  .requiredOption("--unlock <source>", "current passphrase: prompt, stdin, file:<path> or env:<VAR>")
  .requiredOption("--new-passphrase <source>", "new passphrase: prompt (asked twice), stdin, file:<path> or env:<VAR>")
  .action(async (flags) => {
    try {
      const { keysPassphrase } = await import("./keys-store.js");
      await keysPassphrase({ dataDir: flags.dataDir, unlock: flags.unlock, newPassphrase: flags.newPassphrase });
    } catch (e) {
      fail(e);
    }
  });

const slashing = program.command("slashing").description("EIP-3076 slashing-protection interchange");

/** Where the protection database is: the data dir's SQLite file, or PostgreSQL. */
function storeOptions(cmd: Command): Command {
  return cmd
    .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
    // From the environment without a commander default: a default is printed in --help (a password in the URL with it).
    .addOption(new Option("--db-url <url>", "PostgreSQL protection database instead of the data dir's SQLite file").env(ENV.dbUrl))
    .option("--db-schema <name>", "PostgreSQL schema (default public)", process.env[ENV.dbSchema]);
}

storeOptions(slashing.command("import <file>"))
  .description("Import an EIP-3076 interchange file (v5, complete or minimal) into the protection database")
  .option("--network <name|path>", "refuse a file for another network (default: the database's own)")
  .action(async (file: string, flags) => {
    try {
      choosePreset(flags.network ?? "mainnet");
      const { importCommand } = await import("./slashing.js");
      await importCommand(file, flags);
    } catch (e) {
      fail(e);
    }
  });

storeOptions(slashing.command("export <file>"))
  .description("Export the whole protection history as an EIP-3076 interchange file (v5)")
  .option("--pubkey <pubkeys...>", "only these validators")
  .action(async (file: string, flags) => {
    try {
      const { exportCommand } = await import("./slashing.js");
      await exportCommand(file, flags);
    } catch (e) {
      fail(e);
    }
  });

storeOptions(slashing.command("watermark"))
  .description("Set or clear a low or high watermark (a high watermark refuses everything at or beyond it: retire a cluster)")
  .option("--low", "low watermark: refuse blocks at or below --slot, attestations with target at or below (source below) --epoch")
  .option("--high", "high watermark: refuse blocks at or beyond --slot, attestations with target at or beyond --epoch")
  .option("--slot <slot>", "slot bound (blocks)", (v) => positiveInt(v, "--slot"))
  .option("--epoch <epoch>", "epoch bound (attestations)", (v) => positiveInt(v, "--epoch"))
  .option("--pubkey <pubkeys...>", "only these validators (default: all, now and later)")
  .action(async (flags) => {
    try {
      // Watermarks are plain slots and epochs: any preset already chosen (LODESTAR_PRESET) will do.
      if (!process.env.LODESTAR_PRESET) choosePreset("mainnet");
      const { watermarkCommand } = await import("./slashing.js");
      await watermarkCommand(flags);
    } catch (e) {
      fail(e);
    }
  });

storeOptions(slashing.command("retired"))
  .description("List the validators retired by a Keymanager DELETE (their keys are not loaded; nothing is signed for them)")
  .option("--lift <pubkeys...>", "lift these validators' retirement (as importing their keys through the Keymanager API does)")
  .action(async (flags) => {
    try {
      if (!process.env.LODESTAR_PRESET) choosePreset("mainnet");
      const { retiredCommand } = await import("./slashing.js");
      await retiredCommand(flags);
    } catch (e) {
      fail(e);
    }
  });

storeOptions(slashing.command("prune"))
  .description("Delete history older than each validator's newest N epochs (what stays still refuses all it refused)")
  .requiredOption("--keep-epochs <n>", "epochs of history to keep per validator (at least 1)", (v) => positiveInt(v, "--keep-epochs"))
  .option("--network <name|path>", "the network's preset gives the slots per epoch (default mainnet)")
  .option("--pubkey <pubkeys...>", "only these validators")
  .action(async (flags) => {
    try {
      choosePreset(flags.network ?? "mainnet");
      const { pruneCommand } = await import("./slashing.js");
      await pruneCommand(flags);
    } catch (e) {
      fail(e);
    }
  });

/** Run an async CLI function and turn its errors into the usual one-line message and exit code 1. */
const run = (fn: () => Promise<unknown>) => async () => {
  try {
    await fn();
  } catch (e) {
    fail(e);
  }
};
const adminOptions = (cmd: Command): Command =>
  cmd
    .option("--url <url>", "the running Vigil", "http://127.0.0.1:9000")
    .option(
      "--token-file <file>",
      "admin bearer token (the Keymanager token)",
      process.env[ENV.keymanagerTokenFile] || `${process.env[ENV.dataDir] || DEFAULTS.dataDir}/api-token.txt`,
    );

const approvals = program.command("approvals").description("Requests the policy holds for approval (against a running instance)");
adminOptions(approvals.command("list").description("List approval requests")).action(function (this: Command) {
  return run(async () => (await import("./approvals.js")).approvalsList(this.opts()))();
});
const networkOption = (c: Command): Command =>
  c.option("--network <name|path>", "the network to recompute the signing root on (default: the one the entry names; a config.yaml for a custom network)");
networkOption(adminOptions(approvals.command("show <id>").description("Show one request with its decoded content, its signing root recomputed here"))).action(function (this: Command, id: string) {
  return run(async () => (await import("./approvals.js")).approvalsShow({ ...this.opts(), id }))();
});
for (const verb of ["approve", "reject"] as const) {
  const cmd = networkOption(adminOptions(approvals.command(`${verb} <id>`).description(`${verb === "approve" ? "Approve a request whose signing root this machine recomputes from its content" : "Reject a request"} with your approver key (signed locally)`)))
    .requiredOption("--key <file>", "your approver private key (vigil approvers new)")
    .option("--name <name>", "your approver name in the policy (default: found from the key)");
  if (verb === "approve") cmd.option("--yes", "approve without the prompt (the request is still checked and described first)");
  cmd
    .action(function (this: Command, id: string) {
      return run(async () => {
        const m = await import("./approvals.js");
        await (verb === "approve" ? m.approvalsApprove : m.approvalsReject)({ ...(this.opts() as { url: string; tokenFile: string; key: string; name?: string; network?: string; yes?: boolean }), id });
      })();
    });
}

program
  .command("approvers")
  .description("Approver keys (Ed25519)")
  .command("new")
  .description("Write an approver key pair: <out>/<name>.key (0600) and <name>.pub")
  .requiredOption("--name <name>", "approver name, as used in the policy")
  .option("--out <dir>", "output directory", ".")
  .action(function (this: Command) {
    return run(async () => (await import("./approvals.js")).approversNew(this.opts() as { name: string; out?: string }))();
  });

const policyCmd = program.command("policy").description("Signed policy changes");
policyCmd
  .command("sign <policy>")
  .description("Add your approver signature of the change from the running policy to <policy> to <policy>.sig.json")
  .requiredOption("--previous <file>", "the running policy the change replaces (a copy of <data-dir>/policy.accepted.yaml)")
  .requiredOption("--key <file>", "approver private key")
  .requiredOption("--name <name>", "approver name")
  .action(function (this: Command, policy: string) {
    return run(async () => (await import("./approvals.js")).policySign({ policy, ...(this.opts() as { previous: string; key: string; name: string }) }))();
  });
policyCmd
  .command("verify <policy>")
  .description("Check <policy>.sig.json against the approvers and quorum of the running policy")
  .requiredOption("--against <file>", "the running policy (e.g. <data-dir>/policy.accepted.yaml)")
  .action(function (this: Command, policy: string) {
    return run(async () => (await import("./approvals.js")).policyVerify({ policy, against: (this.opts() as { against: string }).against }))();
  });

const audit = program.command("audit").description("The hash-chained audit log of every decision");
const dataDirOption = (cmd: Command): Command => cmd.option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir);
dataDirOption(audit.command("verify").description("Detect any edit, deletion or truncation"))
  .option("--anchor <seq:hash>", "a head recorded elsewhere earlier (vigil audit head)")
  .action(function (this: Command) {
    return run(async () => (await import("./audit.js")).auditVerify(this.opts() as { dataDir: string; anchor?: string }))();
  });
dataDirOption(audit.command("tail").description("Show the latest decisions"))
  .option("-n, --lines <n>", "how many", (v) => positiveInt(v, "--lines"), 20)
  .option("-f, --follow", "keep printing new decisions")
  .action(function (this: Command) {
    return run(async () => (await import("./audit.js")).auditTail(this.opts() as { dataDir: string; lines: number; follow?: boolean }))();
  });
dataDirOption(audit.command("head").description("Print <seq>:<hash> of the last entry (copy it elsewhere as an anchor)")).action(function (this: Command) {
  return run(async () => (await import("./audit.js")).auditHead(this.opts() as { dataDir: string }))();
});

await program.parseAsync(process.argv);
