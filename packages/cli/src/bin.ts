#!/usr/bin/env node
// The `task-cache` binary (see ./main.ts).
import { main } from './main.js';

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
process.exitCode = code;
// NOTE: everything the run opened is closed by now; a handle some library leaves behind must not
// hold the user's build for more than a moment.
setTimeout(() => process.exit(code), 2000).unref();
