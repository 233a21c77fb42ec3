// One jwks-server process for one scenario: a free loopback port, a fresh SQLite file in
// a temporary directory, its output kept for the failure report. Also the operator's
// side: registering users over HTTP and clients with the CLI. Knows nothing of browsers
// or relying parties.

import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const READY_WITHIN_MS = 30_000;
// The CLI writes the clients table; each running server reloads it every 2 s.
const CLIENT_VISIBLE_WITHIN_MS = 10_000;
const CLIENT_POLL_MS = 200;

/** The server binary: JWKS_SERVER_BIN, else the release build, else the debug build. */
export function serverBinary() {
  const candidates = process.env.JWKS_SERVER_BIN
    ? [path.resolve(process.env.JWKS_SERVER_BIN)]
    : ['release', 'debug'].map((profile) =>
        path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target'), profile, 'jwks-server'));
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) {
    throw new Error(`no jwks-server binary at ${candidates.join(' or ')}: ` +
      'build it (cargo build --release) or set JWKS_SERVER_BIN');
  }
  return found;
}

/** The repository root (for the default screenshot directory). */
export const repositoryRoot = ROOT;

async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve, reject) => probe.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

// The caller's JWKS_* variables (and the passphrase) must not change what this server does.
function cleanEnvironment() {
  return Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !name.startsWith('JWKS_') && name !== 'NOT_MY_KEY'));
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `jwks-server` and waits until `/readyz` answers 200.
 * @param {{auth: 'open'|'users', alg: 'ES256'|'RS256'|'EdDSA'}} options
 */
export async function startServer({ auth, alg }) {
  const bin = serverBinary();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'jwks-browser-'));
  const database = path.join(dir, 'server.db');
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const args = ['--host', '127.0.0.1', '--port', String(port), '--database', database,
    '--auth', auth, '--alg', alg, '--issuer', issuer];
  const env = cleanEnvironment();
  let output = `$ ${bin} ${args.join(' ')}\n`;
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let exitStatus = null;
  exited.then((status) => { exitStatus = status; output += `[exited: ${JSON.stringify(status)}]\n`; });

  const server = {
    issuer,
    database,
    /** Everything the server and the CLI printed so far. */
    log: () => output,

    /** `POST /register`; answers the generated password. */
    async register(username, email) {
      const response = await fetch(`${issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, email }),
      });
      const body = await response.text();
      if (response.status !== 201) {
        throw new Error(`POST /register answered ${response.status}: ${body}`);
      }
      return JSON.parse(body).password;
    },

    /**
     * `jwks-server clients add` against this server's database, then waits until the
     * running server accepts the client at `/authorize`. Answers the secret, if printed.
     */
    async addClient(id, { redirectUri, name, isPublic = false, scopes = [] }) {
      const cliArgs = ['--database', database, 'clients', 'add', id, '--redirect-uri', redirectUri];
      if (isPublic) cliArgs.push('--public');
      if (name) cliArgs.push('--name', name);
      for (const scope of scopes) cliArgs.push('--scope', scope);
      output += `$ ${bin} ${cliArgs.join(' ')}\n`;
      let stdout;
      try {
        ({ stdout } = await run(bin, cliArgs, { env }));
      } catch (error) {
        output += `${error.stdout ?? ''}${error.stderr ?? ''}`;
        throw new Error(`clients add ${id} failed (exit ${error.code}): ${error.stderr}`);
      }
      const secret = /^client_secret=(.*)$/m.exec(stdout)?.[1];
      await server.waitForClient(id, redirectUri);
      return secret;
    },

    /** Polls `/authorize` until the server knows the client (it reloads every 2 s). */
    async waitForClient(id, redirectUri) {
      const probe = new URL(`${issuer}/authorize`);
      probe.search = new URLSearchParams({
        response_type: 'code', client_id: id, redirect_uri: redirectUri, scope: 'openid',
        state: 'probe', nonce: 'probe', code_challenge_method: 'S256',
        // RFC 7636 Appendix B's challenge
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      }).toString();
      const deadline = Date.now() + CLIENT_VISIBLE_WITHIN_MS;
      let last;
      while (Date.now() < deadline) {
        const response = await fetch(probe, { redirect: 'manual' });
        if (response.status === 200) return;
        last = `${response.status} ${await response.text()}`;
        await pause(CLIENT_POLL_MS);
      }
      throw new Error(`the server did not accept client ${id} at /authorize within ` +
        `${CLIENT_VISIBLE_WITHIN_MS} ms; last answer: ${last}`);
    },

    /** SIGTERM, then SIGKILL after 10 s; removes the temporary directory. */
    async stop() {
      if (exitStatus === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };

  const deadline = Date.now() + READY_WITHIN_MS;
  for (;;) {
    if (exitStatus !== null) {
      throw new Error(`jwks-server exited before it was ready: ${JSON.stringify(exitStatus)}\n${output}`);
    }
    try {
      const response = await fetch(`${issuer}/readyz`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`jwks-server was not ready within ${READY_WITHIN_MS} ms\n${output}`);
    }
    await pause(100);
  }
  return server;
}

/**
 * The discovery document, checked for what the authorization code flow needs. Fails with
 * a message that says so when the server has no authorization endpoint at all.
 */
export async function discoverAuthorizationServer(issuer) {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (response.status !== 200) {
    throw new Error(`GET ${issuer}/.well-known/openid-configuration answered ${response.status}`);
  }
  const metadata = await response.json();
  if (!metadata.authorization_endpoint) {
    throw new Error(`the server's discovery document has no authorization_endpoint: this ` +
      'jwks-server build lacks the OpenID Connect authorization code flow (issue 12, ' +
      `GET /authorize). Discovery: ${JSON.stringify(metadata)}`);
  }
  return metadata;
}
