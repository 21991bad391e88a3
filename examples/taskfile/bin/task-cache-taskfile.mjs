#!/usr/bin/env node
// The `task-cache-taskfile` command of @task-cache/example-taskfile (named so it cannot be taken for
// go-task's `task`) (build first: `pnpm build`).
import { runCli } from '../dist/cli.js';

await runCli();
