// A small relying party, as a web application would write one with openid-client (v6):
// discovery, /login builds the authorization URL (PKCE S256, state, nonce) and keeps the
// transaction in a cookie-keyed map, /callback exchanges the code (openid-client checks
// state, iss per RFC 9207, the ID token's signature against jwks_uri, iss, aud, nonce, exp)
// and shows the ID token's claims as JSON. It never looks inside the server.
//
// It listens on 127.0.0.1 but is addressed as http://localhost:PORT, so that it is a
// different site from the server at http://127.0.0.1:PORT: the browser then treats the
// redirects between them as cross-site, as between a real application and its issuer.

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import * as client from 'openid-client';

export const SCOPE = 'openid profile email';
const COOKIE = 'rp_txn';

const escapeHtml = (text) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function page(title, id, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>` +
    `<body><h1>${title}</h1><pre id="${id}">${escapeHtml(body)}</pre></body></html>`;
}

function cookie(request, name) {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/**
 * Starts the relying party's HTTP server; `configure` then runs discovery (the redirect
 * URI is needed first, to register the client).
 */
export async function startRelyingParty() {
  const transactions = new Map();
  const rp = {
    /** Every /login and /callback request, in order (for the failure report too). */
    requests: [],
    /** One entry per completed callback: the callback URL, the tokens, the ID token's claims. */
    signIns: [],
    /** Errors openid-client raised at /callback. */
    errors: [],
    /** The transaction of the latest /login: what the ID token must echo. */
    lastTransaction: undefined,
    config: undefined,
    clientId: undefined,
  };

  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url, rp.origin);
    rp.requests.push(`${request.method} ${url.pathname}${url.search}`);
    try {
      if (url.pathname === '/login') {
        const transaction = {
          codeVerifier: client.randomPKCECodeVerifier(),
          state: client.randomState(),
          nonce: client.randomNonce(),
        };
        const key = randomUUID();
        transactions.set(key, transaction);
        rp.lastTransaction = transaction;
        const location = client.buildAuthorizationUrl(rp.config, {
          redirect_uri: rp.redirectUri,
          scope: SCOPE,
          state: transaction.state,
          nonce: transaction.nonce,
          code_challenge: await client.calculatePKCECodeChallenge(transaction.codeVerifier),
          code_challenge_method: 'S256',
        });
        response.writeHead(302, {
          location: location.href,
          'set-cookie': `${COOKIE}=${key}; Path=/; HttpOnly; SameSite=Lax`,
          'cache-control': 'no-store',
        });
        response.end();
      } else if (url.pathname === '/callback') {
        const key = cookie(request, COOKIE);
        const transaction = transactions.get(key);
        if (!transaction) throw new Error(`no transaction for cookie ${COOKIE}=${key}`);
        transactions.delete(key);
        const tokens = await client.authorizationCodeGrant(rp.config, url, {
          pkceCodeVerifier: transaction.codeVerifier,
          expectedState: transaction.state,
          expectedNonce: transaction.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims();
        rp.signIns.push({ callbackUrl: url, transaction, tokens, claims });
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        response.end(page('Signed in', 'claims', JSON.stringify(claims, null, 2)));
      } else {
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end('not found');
      }
    } catch (error) {
      const detail = `${error.name}: ${error.message}` +
        (error.cause ? `\ncause: ${JSON.stringify(error.cause, null, 2)}` : '');
      rp.errors.push(detail);
      response.writeHead(500, { 'content-type': 'text/html; charset=utf-8' });
      response.end(page('Sign-in failed', 'error', detail));
    }
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  rp.origin = `http://localhost:${server.address().port}`;
  rp.redirectUri = `${rp.origin}/callback`;
  rp.loginUrl = `${rp.origin}/login`;

  /** Discovery for a public client (no secret: token endpoint auth `none`, PKCE). */
  rp.configure = async (issuer, clientId) => {
    rp.clientId = clientId;
    rp.config = await client.discovery(new URL(issuer), clientId,
      { redirect_uris: [rp.redirectUri], token_endpoint_auth_method: 'none' },
      client.None(),
      // http:// on loopback only in this test; signatures checked against jwks_uri even
      // though the ID token comes straight from the token endpoint (OIDC Core §3.1.3.7).
      { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });
  };

  /** What went on, for the failure report. */
  rp.report = () => [
    `origin: ${rp.origin}`,
    ...rp.requests.map((line) => `request: ${line}`),
    ...rp.errors.map((line) => `error: ${line}`),
  ].join('\n');

  rp.stop = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  });
  return rp;
}
