import { describe, expect, it } from 'vitest';
import { detectUntrustedContext } from './untrusted-context.js';

// `readOnly: 'auto'` decides from these: each CI's documented variables for a fork's pull or
// merge request, and the same CI's variables for a trusted run (a branch push, a same-repository
// pull request), which must not be read-only.

const payload = (head: string | null, base = 'acme/app') =>
  JSON.stringify({
    pull_request: {
      head: { repo: head === null ? null : { full_name: head } },
      base: { repo: { full_name: base } },
    },
    repository: { full_name: base },
  });
const files = (content: string) => (path: string) => {
  if (path !== '/event.json') throw new Error('ENOENT');
  return content;
};

describe('detectUntrustedContext', () => {
  it.each([
    ['pull_request', 'someone/app'],
    ['pull_request_target', 'someone/app'],
    ['pull_request_review', 'someone/app'],
  ])('GitHub Actions %s from a fork is untrusted, and the reason names the fork', (event, head) => {
    const why = detectUntrustedContext(
      { GITHUB_EVENT_NAME: event, GITHUB_EVENT_PATH: '/event.json' },
      files(payload(head)),
    );
    expect(why).toBe(`GitHub Actions ${event} from the fork ${head}`);
  });

  it('GitHub Actions pull_request from the same repository, and a push, are trusted', () => {
    const env = { GITHUB_EVENT_NAME: 'pull_request', GITHUB_EVENT_PATH: '/event.json' };
    expect(detectUntrustedContext(env, files(payload('acme/app')))).toBeUndefined();
    expect(detectUntrustedContext(env, files(payload('ACME/App')))).toBeUndefined();
    expect(
      detectUntrustedContext({ GITHUB_EVENT_NAME: 'push', GITHUB_EVENT_PATH: '/event.json' }, files('{}')),
    ).toBeUndefined();
  });

  it('GitHub Actions: a deleted head repository or an unreadable payload fails safe (untrusted)', () => {
    const env = { GITHUB_EVENT_NAME: 'pull_request', GITHUB_EVENT_PATH: '/event.json' };
    expect(detectUntrustedContext(env, files(payload(null)))).toMatch(/deleted or unknown fork/);
    expect(detectUntrustedContext({ ...env, GITHUB_EVENT_PATH: '/missing' }, files(''))).toMatch(
      /cannot be read/,
    );
    expect(detectUntrustedContext(env, files('not json'))).toMatch(/cannot be read/);
  });

  it('GitLab merge request pipelines from a fork are untrusted, from the project itself trusted', () => {
    const mr = { CI_PIPELINE_SOURCE: 'merge_request_event', CI_MERGE_REQUEST_PROJECT_ID: '10' };
    expect(
      detectUntrustedContext({
        ...mr,
        CI_MERGE_REQUEST_SOURCE_PROJECT_ID: '77',
        CI_MERGE_REQUEST_SOURCE_PROJECT_PATH: 'someone/app',
      }),
    ).toBe('GitLab merge request pipeline from the fork someone/app');
    expect(detectUntrustedContext({ ...mr, CI_MERGE_REQUEST_SOURCE_PROJECT_ID: '10' })).toBeUndefined();
    expect(
      detectUntrustedContext({ CI_PIPELINE_SOURCE: 'push', CI_MERGE_REQUEST_SOURCE_PROJECT_ID: '77' }),
    ).toBeUndefined();
  });

  it('Buildkite pull requests from another repository are untrusted', () => {
    const base = { BUILDKITE_REPO: 'git@github.com:acme/app.git', BUILDKITE_PULL_REQUEST: '12' };
    expect(
      detectUntrustedContext({ ...base, BUILDKITE_PULL_REQUEST_REPO: 'https://github.com/someone/app.git' }),
    ).toBe('Buildkite pull request #12 from the fork https://github.com/someone/app.git');
    expect(
      detectUntrustedContext({ ...base, BUILDKITE_PULL_REQUEST_REPO: 'https://github.com/acme/app' }),
    ).toBeUndefined();
    expect(
      detectUntrustedContext({ ...base, BUILDKITE_PULL_REQUEST: 'false', BUILDKITE_PULL_REQUEST_REPO: '' }),
    ).toBeUndefined();
  });

  it('CircleCI sets CIRCLE_PR_NUMBER only for forked pull requests', () => {
    expect(
      detectUntrustedContext({
        CIRCLE_PR_NUMBER: '5',
        CIRCLE_PR_USERNAME: 'someone',
        CIRCLE_PR_REPONAME: 'app',
      }),
    ).toBe('CircleCI pull request #5 from the fork someone/app');
    expect(
      detectUntrustedContext({ CIRCLECI: 'true', CIRCLE_PULL_REQUEST: 'https://x/pull/5' }),
    ).toBeUndefined();
  });

  it('Azure Pipelines: SYSTEM_PULLREQUEST_ISFORK=True', () => {
    expect(
      detectUntrustedContext({
        SYSTEM_PULLREQUEST_ISFORK: 'True',
        SYSTEM_PULLREQUEST_PULLREQUESTNUMBER: '9',
      }),
    ).toBe('Azure Pipelines pull request #9 from a fork');
    expect(detectUntrustedContext({ SYSTEM_PULLREQUEST_ISFORK: 'False' })).toBeUndefined();
  });

  it('an empty environment is trusted', () => {
    expect(detectUntrustedContext({})).toBeUndefined();
  });
});
