#!/usr/bin/env node
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

program
  .command("start")
  .description("Run the signer")
  .addOption(new Option("--network <name|path>", `mainnet, hoodi, sepolia, holesky, minimal, or a config.yaml (default ${DEFAULTS.network})`).env(ENV.network))
  .option("--keystores <dir>", "directory of EIP-2335 keystores (*.json)")
  .option("--passwords <dir>", "directory with one <keystore-basename>.txt password file per keystore")
  .option("--password-file <file>", "one password for every keystore")
  .option("--data-dir <dir>", `data directory: slashing-protection database, dev keys (default ${DEFAULTS.dataDir})`)
  .option("--host <address>", `address to listen on (default ${DEFAULTS.host})`)
  .option("--port <port>", `port to listen on (default ${DEFAULTS.port})`)
  .option("--log-level <level>", "fatal, error, warn, info, debug or trace (default info)")
  .option("--config <file>", "YAML config file with any of these options (kebab-case keys)")
  .action(async (flags) => {
    try {
      // commander's .env() already merged VIGIL_NETWORK; the resolver applies the documented precedence.
      const opts = resolveStartOptions(flags);
      choosePreset(opts.network);
      const { start } = await import("./start.js");
      await start(opts);
    } catch (e) {
      fail(e);
    }
  });

const slashing = program.command("slashing").description("EIP-3076 slashing-protection interchange");

slashing
  .command("import <file>")
  .description("Import an EIP-3076 interchange file (v5, complete or minimal) into the protection database")
  .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
  .option("--network <name|path>", "refuse a file for another network (default: the database's own)")
  .action(async (file: string, flags: { dataDir: string; network?: string }) => {
    try {
      choosePreset(flags.network ?? "mainnet");
      const { importCommand } = await import("./slashing.js");
      await importCommand(file, flags);
    } catch (e) {
      fail(e);
    }
  });

slashing
  .command("export <file>")
  .description("Export the whole protection history as an EIP-3076 interchange file (v5)")
  .option("--data-dir <dir>", "data directory", process.env[ENV.dataDir] ?? DEFAULTS.dataDir)
  .option("--pubkey <pubkeys...>", "only these validators")
  .action(async (file: string, flags: { dataDir: string; pubkey?: string[] }) => {
    try {
      const { exportCommand } = await import("./slashing.js");
      await exportCommand(file, flags);
    } catch (e) {
      fail(e);
    }
  });

await program.parseAsync(process.argv);
