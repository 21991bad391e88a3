// Runs the runner's CLI from its TypeScript sources (tests spawn this with tsx and the root
// tsconfig, whose `paths` resolve @task-cache/* to the packages' src/ — no build needed).
import { runCli } from '../src/cli.js';

await runCli();
