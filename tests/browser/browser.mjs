// Debian's headless chromium driven by playwright-core (which never downloads a browser),
// with a fresh profile per scenario, and a record of what the page did (console messages,
// CSP violations, failed requests, committed navigations) for assertions and the failure
// report.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Every wait for the browser: generous, since CI shares two cores with other builds. */
export const WAIT_MS = 30_000;

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * Launches chromium with an empty profile and one page of about 480x560.
 * @param {{javaScriptEnabled?: boolean}} options
 */
export async function openBrowser({ javaScriptEnabled = true } = {}) {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'jwks-browser-profile-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 480, height: 560 },
    javaScriptEnabled,
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  const events = [];
  const navigations = [];
  page.on('console', (message) => events.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => events.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    events.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  page.on('response', (response) =>
    events.push(`response: ${response.status()} ${response.request().method()} ${response.url()}`));
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations.push(frame.url());
  });
  return {
    page,
    /** URLs the main frame committed to (redirects in between are not committed). */
    navigations,
    report: () => events.join('\n'),
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
