#!/usr/bin/env node
// The `task` command of @task-cache/example-taskfile (build first: `pnpm build`).
import { runCli } from '../dist/cli.js';

await runCli();
