#!/usr/bin/env node
// `npx pinledger <command>` from a clone: Node 24 runs the TypeScript sources directly.
const { runCli } = await import("../src/main.ts")
runCli(process.argv.slice(2))
