/**
 * Names and clean-up of a restore's staging directories (`.task-cache-restore-*` in the task
 * directory). A process killed during a restore (Ctrl-C without the signal wired, SIGKILL, a
 * crash) leaves its staging behind; the next run of the task removes it (issue 16). A staging
 * name carries its owner — a hash of the host name and the process id — so a live restore of
 * another process is never removed: a directory is stale when its owner is this host and that
 * process is gone, or, for another host's (a shared volume) or an unnamed one, when it was not
 * touched for {@link STALE_AFTER_MS}.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SCRATCH_PREFIX } from './outputs.js';

/** Prefix of restore staging directories. */
export const STAGING_PREFIX = `${SCRATCH_PREFIX}restore-`;
/** Age after which a staging directory whose owner cannot be checked is stale. */
export const STALE_AFTER_MS = 60 * 60 * 1000;

let host: string | undefined;
const hostTag = (): string => {
  host ??= createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
  return host;
};

/** The `mkdtemp` prefix of this process's staging directories (in `dir`). */
export function stagingPrefix(dir: string): string {
  return join(dir, `${STAGING_PREFIX}${hostTag()}-${process.pid}-`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists (another user's).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the stale restore staging directories at the top of `dir`; resolves how many it
 * removed. Best effort: never throws.
 */
export async function removeStaleStaging(dir: string, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const m = /^([0-9a-f]{8})-([0-9]+)-/.exec(name.slice(STAGING_PREFIX.length));
    let stale: boolean;
    if (m !== null && m[1] === hostTag()) {
      const pid = Number(m[2]);
      stale = pid !== process.pid && !alive(pid);
    } else {
      const st = await lstat(join(dir, name)).catch(() => undefined);
      stale = st !== undefined && now - st.mtimeMs > STALE_AFTER_MS;
    }
    if (!stale) continue;
    try {
      await rm(join(dir, name), { recursive: true, force: true });
      removed++;
    } catch {
      // another run removed it, or it cannot be removed: leave it
    }
  }
  return removed;
}
