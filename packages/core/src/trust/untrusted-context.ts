/**
 * `readOnly: 'auto'`: the CI contexts where untrusted code runs with the job's credentials — a
 * pull or merge request from a fork — detected from each CI's documented environment variables.
 * Such runs restore but never push, so a fork cannot poison the cache the main branch reads.
 *
 * - GitHub Actions: `GITHUB_EVENT_NAME` `pull_request`, `pull_request_target`,
 *   `pull_request_review` or `pull_request_review_comment`, with the event payload at
 *   `GITHUB_EVENT_PATH` naming a head repository other than the base (an unreadable payload counts
 *   as a fork: failing safe).
 * - GitLab CI: `CI_PIPELINE_SOURCE=merge_request_event` with `CI_MERGE_REQUEST_SOURCE_PROJECT_ID`
 *   other than `CI_MERGE_REQUEST_PROJECT_ID`.
 * - Buildkite: `BUILDKITE_PULL_REQUEST` set (not `false`) with `BUILDKITE_PULL_REQUEST_REPO` other
 *   than `BUILDKITE_REPO`.
 * - CircleCI: `CIRCLE_PR_NUMBER` (CircleCI sets it only for pull requests from forks).
 * - Azure Pipelines: `SYSTEM_PULLREQUEST_ISFORK=True`.
 */
import { readFileSync } from 'node:fs';

type Env = Record<string, string | undefined>;

const GITHUB_PR_EVENTS = new Set([
  'pull_request',
  'pull_request_target',
  'pull_request_review',
  'pull_request_review_comment',
]);

function get(v: unknown, ...path: string[]): unknown {
  let cur = v;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function github(env: Env, readFile: (path: string) => string): string | undefined {
  const event = env.GITHUB_EVENT_NAME;
  if (event === undefined || !GITHUB_PR_EVENTS.has(event)) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(readFile(env.GITHUB_EVENT_PATH ?? ''));
  } catch {
    return `GitHub Actions ${event} event whose payload (GITHUB_EVENT_PATH) cannot be read: treated as from a fork`;
  }
  const head = get(payload, 'pull_request', 'head', 'repo', 'full_name');
  const base =
    get(payload, 'pull_request', 'base', 'repo', 'full_name') ?? get(payload, 'repository', 'full_name');
  if (typeof head === 'string' && typeof base === 'string' && head.toLowerCase() === base.toLowerCase())
    return undefined;
  const from = typeof head === 'string' ? `the fork ${head}` : 'a deleted or unknown fork';
  return `GitHub Actions ${event} from ${from}`;
}

function gitlab(env: Env): string | undefined {
  if (env.CI_PIPELINE_SOURCE !== 'merge_request_event') return undefined;
  const source = env.CI_MERGE_REQUEST_SOURCE_PROJECT_ID;
  const target = env.CI_MERGE_REQUEST_PROJECT_ID;
  if (source === undefined || target === undefined || source === target) return undefined;
  const path = env.CI_MERGE_REQUEST_SOURCE_PROJECT_PATH;
  return `GitLab merge request pipeline from the fork ${path ?? `project ${source}`}`;
}

/** `host/owner/repo` of a git URL (`git@host:owner/repo.git`, `https://host/owner/repo`). */
function repoId(url: string): string {
  return url
    .trim()
    .toLowerCase()
    .replace(/^[a-z+]+:\/\//, '')
    .replace(/^[^@/]*@/, '')
    .replace(':', '/')
    .replace(/\.git$/, '')
    .replace(/\/+$/, '');
}

function buildkite(env: Env): string | undefined {
  const pr = env.BUILDKITE_PULL_REQUEST;
  if (pr === undefined || pr === '' || pr === 'false') return undefined;
  const prRepo = env.BUILDKITE_PULL_REQUEST_REPO;
  const repo = env.BUILDKITE_REPO;
  if (prRepo === undefined || prRepo === '' || repo === undefined) return undefined;
  if (repoId(prRepo) === repoId(repo)) return undefined;
  return `Buildkite pull request #${pr} from the fork ${prRepo}`;
}

function circleci(env: Env): string | undefined {
  const pr = env.CIRCLE_PR_NUMBER;
  if (pr === undefined || pr === '') return undefined;
  const from =
    env.CIRCLE_PR_USERNAME && env.CIRCLE_PR_REPONAME
      ? ` ${env.CIRCLE_PR_USERNAME}/${env.CIRCLE_PR_REPONAME}`
      : '';
  return `CircleCI pull request #${pr} from the fork${from}`;
}

function azure(env: Env): string | undefined {
  if ((env.SYSTEM_PULLREQUEST_ISFORK ?? '').toLowerCase() !== 'true') return undefined;
  const pr = env.SYSTEM_PULLREQUEST_PULLREQUESTNUMBER ?? env.SYSTEM_PULLREQUEST_PULLREQUESTID;
  return `Azure Pipelines pull request${pr ? ` #${pr}` : ''} from a fork`;
}

/**
 * Why this environment runs untrusted code (a pull or merge request from a fork), or `undefined`.
 * `readFile` reads GitHub's event payload (injectable for tests).
 */
export function detectUntrustedContext(
  env: Env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): string | undefined {
  return github(env, readFile) ?? gitlab(env) ?? buildkite(env) ?? circleci(env) ?? azure(env);
}
