import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Directory of the embedded default store (an OCI image layout) when no store is configured:
 * `$TASK_CACHE_DIR`, else `$XDG_CACHE_HOME/task-cache`, else `~/.cache/task-cache`.
 * Empty variables count as unset.
 * @param env Environment to read. @default process.env
 */
export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.TASK_CACHE_DIR) return env.TASK_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'task-cache');
  return join(env.HOME || homedir(), '.cache', 'task-cache');
}
