// Token server of the registry fixture (token mode), run in its own child process by
// registry.ts: `node token-server.mjs CONFIG.json`. It answers the distribution Bearer
// challenge the way Harbor's token service does: Basic credentials in, an RS256 JWT out.
// Plain JavaScript on purpose: it runs under `process.execPath` on Node 20 without a loader.
//
// Config JSON: { tlsCertFile, tlsKeyFile, signingCertFile, signingKeyFile, issuer, service,
//   ttlSeconds, users: [{ username, password, access: { glob: actions[] } }] }
// IPC: sends { type: 'listening', port } once; before answering each token request it sends
// { type: 'request', seq, requests } and waits for { type: 'ack', seq }, so the parent's
// request counter is up to date by the time the client sees the response.
import { createHash, createSign, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const signingKey = readFileSync(config.signingKeyFile, 'utf8');
// x5c carries the base64 (not base64url) DER of the signing certificate: the PEM body.
const signingCertDer = readFileSync(config.signingCertFile, 'utf8')
  .replace(/-----BEGIN CERTIFICATE-----/, '')
  .replace(/-----END CERTIFICATE-----[\s\S]*/, '')
  .replace(/\s+/g, '');

const b64url = (input) => Buffer.from(input).toString('base64url');

/** Constant-time string comparison (hash both so lengths match). */
const same = (a, b) =>
  timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

function globToRegExp(glob) {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

function allowedActions(user, repository) {
  const allowed = new Set();
  for (const [glob, actions] of Object.entries(user?.access ?? {})) {
    if (!globToRegExp(glob).test(repository)) continue;
    for (const action of actions) allowed.add(action);
  }
  return allowed;
}

/** `repository:name:pull,push` → { type, name, actions }. Names have no ':' except a registry host port, so split at the ends. */
function parseScope(scope) {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}

function grant(user, scopes) {
  const access = [];
  for (const raw of scopes) {
    for (const scopeText of raw.split(' ')) {
      const scope = parseScope(scopeText);
      if (!scope) continue;
      if (scope.type !== 'repository') {
        // Like Harbor, anything but repository scopes is granted empty.
        access.push({ type: scope.type, name: scope.name, actions: [] });
        continue;
      }
      const allowed = allowedActions(user, scope.name);
      const actions = allowed.has('*')
        ? scope.actions
        : scope.actions.filter((action) => action !== '*' && allowed.has(action));
      // Reduced (possibly empty) access instead of an error, as Harbor does: the registry then
      // answers insufficient_scope.
      access.push({ type: 'repository', name: scope.name, actions });
    }
  }
  return access;
}

function sign(subject, access) {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5c: [signingCertDer] };
  const claims = {
    iss: config.issuer,
    sub: subject,
    aud: config.service,
    exp: now + config.ttlSeconds,
    nbf: now - 1,
    iat: now,
    jti: randomUUID(),
    access,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(signingKey).toString('base64url');
  return { token: `${input}.${signature}`, issuedAt: new Date(now * 1000).toISOString() };
}

/** Basic credentials → user; `null` when absent; `false` when wrong. Passwords may contain ':'. */
function authenticate(header) {
  if (!header) return null;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return false;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const username = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  const user = config.users.find((u) => u.username === username);
  if (!user || !same(user.password, password)) return false;
  return user;
}

let requests = 0;
let seq = 0;
const pendingAcks = new Map();
process.on('message', (message) => {
  if (message?.type === 'ack') {
    pendingAcks.get(message.seq)?.();
    pendingAcks.delete(message.seq);
  }
});
// The parent went away (test run ended or crashed): do not outlive it.
process.on('disconnect', () => process.exit(0));

function counted() {
  requests += 1;
  if (!process.connected) return Promise.resolve();
  const id = ++seq;
  return new Promise((resolve) => {
    pendingAcks.set(id, resolve);
    process.send({ type: 'request', seq: id, requests });
  });
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

const server = createServer(
  { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) },
  (req, res) => {
    const url = new URL(req.url ?? '/', 'https://token.invalid');
    if (url.pathname === '/stats' && req.method === 'GET') {
      send(res, 200, { requests });
      return;
    }
    if (url.pathname !== '/token') {
      send(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
      return;
    }
    counted().then(() => {
      if (req.method !== 'GET') {
        send(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'use GET' }] }, { allow: 'GET' });
        return;
      }
      const service = url.searchParams.get('service');
      if (service !== null && service !== config.service) {
        send(res, 400, { errors: [{ code: 'INVALID_SERVICE', message: `unknown service ${service}` }] });
        return;
      }
      const user = authenticate(req.headers.authorization);
      if (user === false) {
        send(
          res,
          401,
          { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] },
          { 'www-authenticate': 'Basic realm="task-cache testkit token server"' },
        );
        return;
      }
      // Anonymous requests (no Authorization) get a token with no access.
      const access = user === null ? grant(undefined, []) : grant(user, url.searchParams.getAll('scope'));
      const { token, issuedAt } = sign(user === null ? '' : user.username, access);
      send(res, 200, {
        token,
        access_token: token,
        expires_in: config.ttlSeconds,
        issued_at: issuedAt,
      });
    });
  },
);

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  if (process.connected) process.send({ type: 'listening', port });
  else console.log(JSON.stringify({ port }));
});
