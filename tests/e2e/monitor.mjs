// End-to-end test of the admin monitor in a real headless browser (Debian's chromium driven by
// playwright-core; no browser download). Run it with `make e2e`, which builds the binary first.
//
// It starts `currency-conversion serve --role all` against a fresh database and its own Redis key
// prefix, creates an admin with the CLI, logs in through the form, checks the overview, presses
// "Run now" for `prune_expired_data`, reloads until the run has succeeded (with a deadline), and saves a
// screenshot of the overview to target/e2e-monitor.png.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(root, 'target');
const bin = process.env.CCS_BIN ? resolve(process.env.CCS_BIN) : join(targetDir, 'debug', 'currency-conversion');
const screenshot = join(root, 'target', 'e2e-monitor.png');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const suffix = `${Date.now().toString(36)}${process.pid}`;
const dbName = `ccs_e2e_${suffix}`;
const pgBase = process.env.E2E_PG_URL || 'postgres://postgres@127.0.0.1:5432';
const email = `admin-${suffix}@example.com`;
const password = `e2e-password-${suffix}`;

function log(...args) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 19)}]`, ...args);
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
    srv.on('error', fail);
  });
}

const port = await freePort();
const env = {
  ...process.env,
  APP_ENV: 'local',
  CCS_SETTINGS_DIR: join(root, 'settings'),
  DATABASE_URL: `${pgBase}/${dbName}`,
  CCS__DATABASE__URL: `${pgBase}/${dbName}`,
  CCS__REDIS__KEY_PREFIX: `e2e:${suffix}:`,
  CCS__SERVER__PORT: String(port),
  CCS__SERVER__WORKERS: '2',
  CCS__SERVER__SHUTDOWN_TIMEOUT_SECS: '2',
  CCS__LOG__LEVEL: 'warn',
  // Nothing in this test needs the outside world: point providers at a closed local port so a
  // scheduled fetch fails fast instead of reaching the internet.
  CCS__RATES__PROVIDER_URL: 'http://127.0.0.1:9',
  CCS__RATES__FALLBACKS: 'ecb=http://127.0.0.1:9',
};

let server;
let browser;
const userDataDir = mkdtempSync(join(tmpdir(), 'ccs-e2e-chromium-'));

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((ok) => {
      const timer = setTimeout(() => { server.kill('SIGKILL'); ok(); }, 8000);
      server.once('exit', () => { clearTimeout(timer); ok(); });
    });
  }
  rmSync(userDataDir, { recursive: true, force: true });
  try {
    execFileSync('psql', [`${pgBase}/postgres`, '-qc', `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: 'ignore' });
  } catch { /* best effort */ }
  try {
    const keys = execFileSync('redis-cli', ['-h', '127.0.0.1', '--scan', '--pattern', `e2e:${suffix}:*`]).toString().split('\n').filter(Boolean);
    if (keys.length) execFileSync('redis-cli', ['-h', '127.0.0.1', 'DEL', ...keys], { stdio: 'ignore' });
  } catch { /* best effort */ }
}

async function waitFor(what, deadlineMs, check) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function main() {
  const started = Date.now();
  log(`creating admin ${email} in database ${dbName}`);
  execFileSync(bin, ['user', 'create', '--email', email, '--role', 'admin', '--name', 'E2E admin'], {
    env: { ...env, CCS_PASSWORD: password },
    stdio: ['ignore', 'inherit', 'inherit'],
  });

  // Some history so that the rates page has rows and a chart: currencies from `seed`, then 30
  // days of made-up ECB rates (the test has no internet) through the CSV importer.
  execFileSync(bin, ['seed'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const csv = join(userDataDir, 'eurofxref-hist.csv');
  const lines = ['Date,USD,GBP,JPY,CHF,'];
  for (let d = 1; d <= 30; d++) { // newest first, as the ECB publishes it
    const day = new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10);
    const wave = Math.sin(d / 4);
    lines.push(`${day},${(1.08 + 0.02 * wave).toFixed(4)},${(0.85 + 0.01 * wave).toFixed(4)},${(160 + 3 * wave).toFixed(2)},${(0.94 - 0.01 * wave).toFixed(4)},`);
  }
  writeFileSync(csv, lines.join('\n') + '\n');
  execFileSync(bin, ['rates', 'import-ecb', csv], { env, stdio: ['ignore', 'inherit', 'inherit'] });

  log(`starting ${bin} serve --role all on port ${port}`);
  server = spawn(bin, ['serve', '--role', 'all'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  server.once('exit', (code) => { if (code) log(`server exited with ${code}`); });
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the server', 30_000, async () => {
    try { return (await fetch(`${base}/health/live`)).ok; } catch { return false; }
  });

  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] ?? await browser.newPage();
  page.setDefaultTimeout(15_000);

  log('anonymous visit goes to the login page');
  await page.goto(`${base}/monitor`);
  if (!page.url().endsWith('/monitor/login')) throw new Error(`expected the login page, got ${page.url()}`);

  log('wrong password is refused');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'definitely-not-it');
  await page.click('button[type=submit]');
  await page.getByText('Those credentials do not open the monitor.').waitFor();

  log('logging in');
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/monitor`);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  for (const text of ['Queue depth', 'Jobs', 'Rate fetches', 'Recent failures', 'prune_expired_data', 'fetch_rates']) {
    await page.getByText(text, { exact: true }).first().waitFor();
  }

  log('pressing Run now for prune_expired_data');
  await page.click('tr[data-task="prune_expired_data"] button:has-text("Run now")');
  await page.waitForURL(/\/monitor\/runs\/[0-9a-f-]{36}$/);
  const runUrl = page.url();
  log(`run page ${runUrl}`);
  await waitFor('the prune_expired_data run to succeed', 30_000, async () => {
    await page.goto(runUrl);
    return (await page.locator('h1 .badge').innerText()).trim() === 'succeeded';
  });
  log('prune_expired_data succeeded');

  await page.goto(`${base}/monitor`);
  await page.locator('tr[data-task="prune_expired_data"] .badge.ok').waitFor();
  mkdirSync(join(root, 'target'), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  log(`screenshot saved to ${screenshot}`);

  log('rates page with a chart');
  await page.goto(`${base}/monitor/rates?currency=USD&days=30`);
  await page.locator('svg.chart path.line').waitFor();
  await page.getByRole('cell', { name: 'GBP', exact: true }).waitFor();
  await page.screenshot({ path: join(root, 'target', 'e2e-monitor-rates.png'), fullPage: true });

  // Phone-sized viewport: the page still renders without a horizontal scrollbar on the body.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/monitor`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`the overview overflows a phone screen by ${overflow}px`);
  // Nor does the jobs table scroll sideways inside its card: its rows stack on a phone.
  const jobsOverflow = await page.evaluate(() => {
    const box = document.querySelector('table.stack').parentElement;
    return box.scrollWidth - box.clientWidth;
  });
  if (jobsOverflow > 1) throw new Error(`the jobs table scrolls sideways on a phone by ${jobsOverflow}px`);
  await page.screenshot({ path: join(root, 'target', 'e2e-monitor-phone.png'), fullPage: true });

  log('logging out');
  await page.click('header button:has-text("Log out")');
  await page.waitForURL(`${base}/monitor/login`);
  log(`e2e passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error('e2e FAILED:', e);
} finally {
  await cleanup();
}
console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
process.exit(failed ? 1 : 0);
