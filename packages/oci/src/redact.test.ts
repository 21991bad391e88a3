import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { redactUrl, redactUrls, scrubSecrets } from './redact.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('redactUrl', () => {
  it.each([
    // [input, expected]
    ['redis://host:6379/0', 'redis://host:6379/0'],
    ['redis://:s3cret@host:6379', 'redis://***:***@host:6379'],
    ['redis://user:s3cret@host:6379/2', 'redis://***:***@host:6379/2'],
    ['redis://justuser@host', 'redis://***@host'],
    ['rediss://default:pw@h.example:6380/1?ttl=60', 'rediss://***:***@h.example:6380/1?ttl=60'],
    ['redis://:p@ss/w#rd?x@[::1]:6379/0', 'redis://***:***@[::1]:6379/0'],
    ['redis://:pa%40ss%2F%3F%23%25@host', 'redis://***:***@host'],
    ['redis://:100%pure@host:1', 'redis://***:***@host:1'],
    ['redis://:pa ss word@host:1/k', 'redis://***:***@host:1/k'],
    ['redis://:pw@[::1]:6379/lock:a', 'redis://***:***@[::1]:6379/lock:a'],
    ['redis://:pw@[::1:6379/0', 'redis://***:***@[::1:6379/0'],
    ['redis://:pw@[fe80::1', 'redis://***:***@[fe80::1'],
    [
      'redis+sentinel://:pw@h1:26379,h2:26379/mymaster',
      'redis+sentinel://***:***@h1:26379,h2:26379/mymaster',
    ],
    ['redis+sentinel://u:p@w@h1:26379,h2:26379', 'redis+sentinel://***:***@h1:26379,h2:26379'],
    ['oci://robot$x+y:pw@reg.example/team/repo:tag', 'oci://***:***@reg.example/team/repo:tag'],
    [`oci://reg.example/team/repo@${DIGEST}`, `oci://reg.example/team/repo@${DIGEST}`],
    [`oci://u:p@reg.example/team/repo@${DIGEST}`, `oci://***:***@reg.example/team/repo@${DIGEST}`],
    ['oci-layout:/tmp/a@b/x', 'oci-layout:/tmp/a@b/x'],
    ['memory://name:tag', 'memory://name:tag'],
    ['', ''],
    [
      'https://h:5000/v2/a/blobs/uploads/u?_state=S3CR3T&digest=sha256%3Aab&X-Amz-Signature=SIG&n=1',
      'https://h:5000/v2/a/blobs/uploads/u?_state=***&digest=sha256%3Aab&X-Amz-Signature=***&n=1',
    ],
    ['/v2/a/blobs/uploads/1?_state=abc&digest=sha256:1', '/v2/a/blobs/uploads/1?_state=***&digest=sha256:1'],
    [
      'https://t.example/token?service=reg&scope=repository:a:pull',
      'https://t.example/token?service=reg&scope=repository:a:pull',
    ],
    ['redis://:pw@h:1/0?password=x#frag', 'redis://***:***@h:1/0?password=***#frag'],
  ])('%s → %s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  const passwordChars = fc.constantFrom(..."abcXYZ019 /#?@%:[]!$&'()*+,;=~._-".split(''));
  const password = fc.array(passwordChars, { minLength: 1, maxLength: 24 }).map((a) => a.join(''));

  it('never prints a password, whatever it contains (raw or percent-encoded; with or without a user)', () => {
    fc.assert(
      fc.property(password, fc.boolean(), fc.boolean(), (pw, encode, withUser) => {
        const secret = encode ? encodeURIComponent(pw) : pw;
        const user = withUser ? 'robot$ci' : '';
        for (const [url, expected] of [
          [`redis://${user}:${secret}@host:6379/0`, 'redis://***:***@host:6379/0'],
          [`rediss://${user}:${secret}@[::1]:6380`, 'rediss://***:***@[::1]:6380'],
          [`oci://${user}:${secret}@reg.example:5000/a/b:t`, 'oci://***:***@reg.example:5000/a/b:t'],
          [
            `redis+sentinel://${user}:${secret}@h1:26379,h2:26379/m`,
            'redis+sentinel://***:***@h1:26379,h2:26379/m',
          ],
        ] as const) {
          expect(redactUrl(url)).toBe(expected);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('redactUrls (free text)', () => {
  it('redacts every URL in a message and keeps the text around them', () => {
    const text =
      'connect to redis://:pw@h:6379/0 failed (ECONNREFUSED); then GET https://u:p@reg/v2/x?_state=abc failed';
    expect(redactUrls(text)).toBe(
      'connect to redis://***:***@h:6379/0 failed (ECONNREFUSED); then GET https://***:***@reg/v2/x?_state=*** failed',
    );
  });

  it('a URL in parentheses or quotes', () => {
    expect(redactUrls('store (redis://:pw@h:1) is down')).toBe('store (redis://***:***@h:1) is down');
    expect(redactUrls('"rediss://u:pw@h:1/0"')).toBe('"rediss://***:***@h:1/0"');
  });

  it('a `scheme://` inside a URL (in its password or its query) starts no new URL', () => {
    // Regression (property test): the password `ab://cd` began a second URL, leaking `ab`.
    expect(redactUrls('failed oci://robot:ab://cd@reg:5000/r:t (E)')).toBe(
      'failed oci://***:***@reg:5000/r:t (E)',
    );
    expect(redactUrls('GET https://reg/v2/?next=https://u:pw@x/y done')).toBe('GET https://***:***@x/y done');
    // Separated by white space, two URLs stay two.
    expect(redactUrls('a https://reg/v2/ b https://u:pw@x/y')).toBe(
      'a https://reg/v2/ b https://***:***@x/y',
    );
  });

  it('text without URLs is unchanged', () => {
    expect(redactUrls('nothing to see: a@b, c:d')).toBe('nothing to see: a@b, c:d');
    // A bare scheme in prose is not a URL: the `@` of a package name later on is not user-info.
    const prose = 'redis:// and rediss:// locks (@task-cache/lock/redis) need ioredis; see redis://u:pw@h:1';
    expect(redactUrls(prose)).toBe(
      'redis:// and rediss:// locks (@task-cache/lock/redis) need ioredis; see redis://***:***@h:1',
    );
  });
});

describe('scrubSecrets', () => {
  const creds = { username: 'robot$task-cache+ci', password: 's3cr:et/pa ss"x' };

  it('removes a secret in raw, percent-encoded (either case, + for space), JSON and base64 forms', () => {
    const pw = creds.password;
    const forms = [
      pw,
      encodeURIComponent(pw),
      encodeURIComponent(pw)
        .toLowerCase()
        .replace(/%[0-9a-f]{2}/g, (m) => m.toLowerCase()),
      encodeURIComponent(pw).replace(/%20/g, '+'),
      JSON.stringify(pw).slice(1, -1),
      Buffer.from(pw).toString('base64'),
      Buffer.from(pw).toString('base64url'),
      // A Basic header: the base64 of user:password does not contain the password's base64.
      Buffer.from(`${creds.username}:${pw}`).toString('base64'),
    ];
    for (const form of forms) {
      const out = scrubSecrets(`registry said: <${form}> is wrong`, [creds]);
      expect(out).toBe('registry said: <***> is wrong');
    }
  });

  it('takes bare strings (tokens) too, ignores empty ones, and redacts URLs afterwards', () => {
    expect(scrubSecrets('token eyJabc.def in https://u:p@h/x', ['eyJabc.def', '', undefined])).toBe(
      'token *** in https://***:***@h/x',
    );
    expect(scrubSecrets('', ['x'])).toBe('');
  });

  it('keeps the user name (it is not a secret) and everything else', () => {
    expect(scrubSecrets(`user ${creds.username} denied`, [creds])).toBe(`user ${creds.username} denied`);
  });
});
