// The programmatic face of the `task-cache` command (its binary is `task-cache`, see ./bin.ts).
export { ENV_TWINS } from './args.js';
export type { CliConfig, ConfigTask } from './config.js';
export { CliError, type CliErrorCode, EXIT } from './errors.js';
export { LOG_DIR, LOG_LIMIT, LOG_MAGIC, logPath, replayLog } from './logs.js';
export { main } from './main.js';
export type { CliIo } from './run.js';
