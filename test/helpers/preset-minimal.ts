// Imported first by test files that need the minimal preset: @lodestar/params reads
// LODESTAR_PRESET once, when it is first imported.
process.env.LODESTAR_PRESET = "minimal";
