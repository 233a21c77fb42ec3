// OpenID Connect sign-in as a person does it: Debian chromium (playwright-core) opens a
// relying party built on openid-client, is sent to jwks-server's sign-in page, fills it in
// by its labels, and lands back on the relying party, which has exchanged the code (PKCE
// S256) and validated the ID token. Each ID token is verified again with jose against the
// published JWKS alone. Each scenario has its own server, SQLite file, relying party and
// browser profile. Run by run.sh (`node --test`); see README.md beside this file.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as client from 'openid-client';

import { openBrowser, WAIT_MS } from './browser.mjs';
import { SCOPE, startRelyingParty } from './relying-party.mjs';
import { discoverAuthorizationServer, repositoryRoot, startServer } from './server.mjs';

const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? path.join(repositoryRoot, 'docs');
const SCENARIO_TIMEOUT_MS = 180_000;
const now = () => Math.floor(Date.now() / 1000);

/**
 * One scenario: `body(use)` registers each resource it starts with `use(label, resource,
 * report, close)`; they are closed in reverse order, and on failure every report (the
 * server's log first) is printed under the scenario's name.
 */
function scenario(name, body) {
  test(name, { timeout: SCENARIO_TIMEOUT_MS }, async () => {
    const resources = [];
    const use = (label, resource, report, close) => {
      resources.push({ label, report, close });
      return resource;
    };
    try {
      await body(use);
    } catch (error) {
      const lines = [`\n==== FAILED: ${name}`, `${error.stack ?? error}`];
      for (const { label, report } of resources) lines.push(`---- ${label} ----`, report());
      lines.push(`==== end of ${name}\n`);
      process.stderr.write(`${lines.join('\n')}\n`);
      throw error;
    } finally {
      for (const { label, close } of resources.reverse()) {
        await close().catch((error) => process.stderr.write(`closing ${label}: ${error}\n`));
      }
    }
  });
}

async function start(use, { auth, alg, javaScriptEnabled = true }) {
  const server = await startServer({ auth, alg });
  use('jwks-server log', server, server.log, server.stop);
  const metadata = await discoverAuthorizationServer(server.issuer);
  const rp = await startRelyingParty();
  use('relying party', rp, rp.report, rp.stop);
  const browser = await openBrowser({ javaScriptEnabled });
  use('browser (console, responses)', browser, browser.report, browser.close);
  return { server, metadata, rp, browser, page: browser.page };
}

function checkDiscovery(metadata, issuer) {
  assert.equal(metadata.issuer, issuer);
  for (const [field, endpoint] of [['authorization_endpoint', 'authorize'], ['token_endpoint', 'token'],
    ['userinfo_endpoint', 'userinfo'], ['end_session_endpoint', 'logout']]) {
    assert.equal(metadata[field], `${issuer}/${endpoint}`, field);
  }
  assert.ok(metadata.jwks_uri, 'jwks_uri');
  assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
  assert.ok(metadata.response_types_supported.includes('code'), 'response_types_supported has code');
  assert.equal(metadata.authorization_response_iss_parameter_supported, true);
}

// A sign-in page must not run injected script nor be framed (RFC 6749 §10.13, clickjacking).
function checkStrictCsp(headers) {
  const csp = headers['content-security-policy'];
  assert.ok(csp, 'the sign-in page sends a Content-Security-Policy');
  const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).filter(([n]) => n)
    .map(([directive, ...sources]) => [directive.toLowerCase(), sources]));
  const scripts = directives.get('script-src') ?? directives.get('default-src');
  assert.ok(scripts, `the CSP restricts scripts: ${csp}`);
  for (const loose of ["'unsafe-inline'", "'unsafe-eval'", '*', 'http:', 'https:', 'data:']) {
    assert.ok(!scripts.includes(loose), `the CSP allows scripts from ${loose}: ${csp}`);
  }
  const ancestors = directives.get('frame-ancestors')?.join(' ');
  const frameOptions = headers['x-frame-options']?.toUpperCase();
  assert.ok(["'none'", "'self'"].includes(ancestors) || ['DENY', 'SAMEORIGIN'].includes(frameOptions),
    `the sign-in page may be framed: CSP ${csp}, X-Frame-Options ${frameOptions}`);
}

// OIDC Core §3.1.3.6: the left half of the hash of the access token, with the hash of the
// ID token's alg (SHA-512 for EdDSA with Ed25519).
function atHash(accessToken, alg) {
  const hash = { RS256: 'sha256', ES256: 'sha256', PS256: 'sha256', EdDSA: 'sha512' }[alg];
  assert.ok(hash, `no at_hash rule for alg ${alg}`);
  const digest = createHash(hash).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** Goes to the relying party's /login and answers the sign-in page's response. */
async function openSignInPage(page, rp, issuer) {
  const response = await page.goto(rp.loginUrl);
  await page.waitForURL((url) => url.href.startsWith(`${issuer}/authorize?`));
  assert.equal(response.status(), 200, 'GET /authorize shows the sign-in page');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  return response;
}

async function submitAndReachCallback(page, rp) {
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.href.startsWith(rp.redirectUri), { timeout: WAIT_MS });
  return readCallbackPage(page, rp);
}

// The relying party's callback page: its claims, or openid-client's error.
async function readCallbackPage(page, rp) {
  const error = page.locator('#error');
  await page.locator('#claims, #error').first().waitFor();
  if (await error.count()) throw new Error(`the relying party refused the response: ${await error.textContent()}`);
  const shown = JSON.parse(await page.locator('#claims').textContent());
  const signIn = rp.signIns.at(-1);
  assert.ok(signIn, 'the relying party completed a sign-in');
  assert.deepEqual(shown, signIn.claims, 'the callback page shows the ID token claims');
  return signIn;
}

/**
 * Verifies the sign-in's tokens again, independently of openid-client, with jose and the
 * JWKS at jwks_uri only. Answers the ID token's claims.
 */
async function verifyIndependently(signIn, { metadata, clientId, username, startedAt }) {
  const { tokens, transaction, callbackUrl } = signIn;
  // RFC 9207 §2: the authorization response names its issuer.
  assert.equal(callbackUrl.searchParams.get('iss'), metadata.issuer, 'iss on the redirect');
  assert.equal(callbackUrl.searchParams.get('state'), transaction.state);
  assert.ok(callbackUrl.searchParams.get('code'), 'code on the redirect');

  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(Number.isInteger(tokens.expires_in) && tokens.expires_in > 0, 'expires_in');
  assert.deepEqual(new Set(tokens.scope.split(' ')), new Set(SCOPE.split(' ')), 'granted scope');

  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  const { payload: id, protectedHeader } = await jwtVerify(tokens.id_token, jwks, {
    issuer: metadata.issuer, audience: clientId,
  });
  if (Array.isArray(id.aud) && id.aud.length > 1) assert.equal(id.azp, clientId, 'azp');
  assert.equal(id.sub, username);
  assert.equal(id.nonce, transaction.nonce);
  assert.ok(Number.isInteger(id.iat) && Number.isInteger(id.exp) && id.exp > id.iat, 'iat < exp');
  assert.ok(Number.isInteger(id.auth_time), 'auth_time is a NumericDate');
  assert.ok(id.auth_time <= id.iat, 'auth_time is not after iat');
  assert.ok(id.auth_time >= startedAt - 60, 'auth_time is this sign-in, not an older one');
  assert.equal(id.at_hash, atHash(tokens.access_token, protectedHeader.alg), 'at_hash');
  assert.equal(id.preferred_username, username, 'scope profile gives preferred_username');

  // RFC 9068 §2.2: an access token for the same user, bound to this client.
  const { payload: access } = await jwtVerify(tokens.access_token, jwks, {
    issuer: metadata.issuer, typ: 'at+jwt',
  });
  for (const claim of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
    assert.ok(claim in access, `the access token has ${claim}`);
  }
  assert.equal(access.sub, username);
  assert.equal(access.client_id, clientId);
  return id;
}

scenario('users mode: a registered user signs in to a public client with PKCE, the session ' +
  'skips the page the second time, and /userinfo names the same subject', async (use) => {
  const startedAt = now();
  const { server, metadata, rp, browser, page } = await start(use, { auth: 'users', alg: 'ES256' });
  checkDiscovery(metadata, server.issuer);
  const password = await server.register('alice', 'alice@example.com');
  const clientId = 'browser-test-spa';
  const secret = await server.addClient(clientId, {
    redirectUri: rp.redirectUri, name: 'Browser Test RP', isPublic: true,
  });
  assert.equal(secret, undefined, 'a public client gets no secret');
  await rp.configure(server.issuer, clientId);

  const signInPage = await openSignInPage(page, rp, server.issuer);
  checkStrictCsp(signInPage.headers());
  await page.getByText('Browser Test RP').first().waitFor();
  assert.equal(await page.getByLabel(/claims/i).count(), 0, 'no claims field in users mode');
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'signin.png') });

  await page.getByLabel('Username', { exact: true }).fill('alice');
  await page.getByLabel('Password', { exact: true }).fill(password);
  const first = await submitAndReachCallback(page, rp);
  const id = await verifyIndependently(first, { metadata, clientId, username: 'alice', startedAt });
  assert.equal(id.email, 'alice@example.com', 'scope email gives email');

  // The same browser again: the session answers at once, no page in between.
  browser.navigations.length = 0;
  await page.goto(rp.loginUrl);
  await page.waitForURL((url) => url.href.startsWith(rp.redirectUri));
  assert.deepEqual(browser.navigations.filter((url) => url.startsWith(server.issuer)), [],
    'the second /authorize shows no page');
  const second = await readCallbackPage(page, rp);
  assert.notEqual(second, first, 'a second sign-in reached the callback');
  const again = await verifyIndependently(second, { metadata, clientId, username: 'alice', startedAt });
  assert.notEqual(again.nonce, id.nonce, 'each ID token carries its own request\'s nonce');
  assert.equal(again.auth_time, id.auth_time, 'auth_time stays the time the user signed in');

  const userinfo = await client.fetchUserInfo(rp.config, second.tokens.access_token, id.sub);
  assert.equal(userinfo.sub, 'alice');
  assert.equal(userinfo.preferred_username, 'alice');
  assert.equal(userinfo.email, 'alice@example.com');

  // A browser application posts to /token from its own origin.
  const preflight = await fetch(metadata.token_endpoint, {
    method: 'OPTIONS',
    headers: { origin: rp.origin, 'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type' },
  });
  assert.ok(preflight.status >= 200 && preflight.status < 300, `CORS preflight answered ${preflight.status}`);
  assert.ok(['*', rp.origin].includes(preflight.headers.get('access-control-allow-origin')),
    `Access-Control-Allow-Origin: ${preflight.headers.get('access-control-allow-origin')}`);
});

scenario('open mode: any username and extra claims typed into the page reach the ID token ' +
  'of an unregistered client, without JavaScript', async (use) => {
  const startedAt = now();
  const { server, metadata, rp, page } = await start(use, {
    auth: 'open', alg: 'RS256', javaScriptEnabled: false,
  });
  checkDiscovery(metadata, server.issuer);
  const clientId = 'unregistered-app';
  await rp.configure(server.issuer, clientId);

  await openSignInPage(page, rp, server.issuer);
  // An unregistered name needs no password; the page may offer one for registered names.
  const password = page.getByLabel(/^Password\b/);
  if (await password.count()) {
    assert.equal(await password.getAttribute('required'), null, 'the password is optional in open mode');
  }
  await page.getByLabel('Username', { exact: true }).fill('carol');
  await page.getByLabel(/claims/i).fill('{"roles": ["admin"], "department": "research"}');
  const signIn = await submitAndReachCallback(page, rp);
  const id = await verifyIndependently(signIn, { metadata, clientId, username: 'carol', startedAt });
  assert.deepEqual(id.roles, ['admin']);
  assert.equal(id.department, 'research');
});

scenario('users mode: a wrong password shows the error on the page and issues no code; the ' +
  'right one then signs in', async (use) => {
  const startedAt = now();
  const { server, metadata, rp, page } = await start(use, { auth: 'users', alg: 'EdDSA' });
  const password = await server.register('bob', 'bob@example.com');
  const clientId = 'browser-test-error';
  await server.addClient(clientId, {
    redirectUri: rp.redirectUri, name: 'Browser Test RP', isPublic: true,
  });
  await rp.configure(server.issuer, clientId);

  await openSignInPage(page, rp, server.issuer);
  await page.getByLabel('Username', { exact: true }).fill('bob');
  await page.getByLabel('Password', { exact: true }).fill(`not-${password}`);
  const [answer] = await Promise.all([
    page.waitForResponse((response) =>
      response.request().method() === 'POST' && response.url().startsWith(server.issuer)),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  assert.equal(answer.status(), 403, 'a wrong password answers 403 (RFC 9110 §15.5.4)');
  assert.equal(answer.headers().location, undefined, 'no redirect');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.equal((await alert.textContent()).trim(), 'Wrong username or password.');
  assert.equal(await page.locator('p.error[role="alert"]').count(), 1);
  assert.ok(page.url().startsWith(server.issuer) && !new URL(page.url()).searchParams.has('code'),
    `still on the sign-in page: ${page.url()}`);
  assert.ok(!rp.requests.some((line) => line.startsWith('GET /callback')), 'the callback was never hit');
  assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '',
    'the page does not echo the password');
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'signin-error.png') });

  await page.getByLabel('Username', { exact: true }).fill('bob');
  await page.getByLabel('Password', { exact: true }).fill(password);
  const signIn = await submitAndReachCallback(page, rp);
  await verifyIndependently(signIn, { metadata, clientId, username: 'bob', startedAt });
  assert.equal(rp.signIns.length, 1, 'exactly one sign-in completed');
});
