/**
 * A team's cache policy, as plain data plus functions — the part of the configuration worth
 * unit-testing, because a wrong policy silently poisons or bypasses the cache:
 *
 * - never cache at all when `NO_BUILD_CACHE` is set (incident switch);
 * - pull-request builds are untrusted: they restore but never push (read-only);
 * - entries larger than the size cap are not saved (a runaway `generates` glob must not fill the registry);
 * - release builds (`RELEASE=true`) never restore: they always build from source, and save.
 */
import type { CacheOptions, PolicyContext } from '@task-cache/core';

/** Entries above this many uncompressed bytes are not saved. */
export const SIZE_CAP = 256 * 1024;

/** The environment variables the policy reads (GitLab / GitHub style). */
export interface PolicyEnv {
  NO_BUILD_CACHE?: string;
  /** GitLab: set on merge-request pipelines. */
  CI_MERGE_REQUEST_IID?: string;
  /** GitHub Actions: `pull_request` / `pull_request_target` on PR builds. */
  GITHUB_EVENT_NAME?: string;
  RELEASE?: string;
}

/** Whether the build runs for a pull request. */
export function isPullRequest(env: PolicyEnv): boolean {
  return Boolean(env.CI_MERGE_REQUEST_IID) || (env.GITHUB_EVENT_NAME ?? '').startsWith('pull_request');
}

/** The options to spread into `createCache({ store, lock, ...teamPolicy(process.env) })`. */
export function teamPolicy(
  env: PolicyEnv,
): Pick<CacheOptions, 'enabled' | 'readOnly' | 'maxEntrySize' | 'shouldRestore' | 'shouldSave'> {
  return {
    enabled: !env.NO_BUILD_CACHE,
    readOnly: isPullRequest(env),
    maxEntrySize: SIZE_CAP,
    shouldRestore: (_context: PolicyContext) => env.RELEASE !== 'true',
    shouldSave: ({ bytesTotal }) => bytesTotal === undefined || bytesTotal <= SIZE_CAP,
  };
}
