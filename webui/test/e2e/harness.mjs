// End-to-end harness: a real collector and real sensors replaying shared captures,
// driven through Debian's chromium by playwright-core (no browser download).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const PCAPS = join(REPO, 'common', 'oracle', 'testdata', 'pcaps');
export const OUT = join(REPO, 'webui', 'test-results');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** binaries: NETWATCH_BIN (a directory with both binaries, e.g. bin/ after make
 *  build) or a fresh go build into a temporary directory. */
export function binaries() {
  let dir = process.env.NETWATCH_BIN;
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'netwatch-e2e-'));
    for (const [mod, cmd] of [['collector', 'netwatch-collector'], ['sensor', 'netwatch-sensor']]) {
      execFileSync('go', ['build', '-o', join(dir, cmd), './cmd/' + cmd], { cwd: join(REPO, mod), stdio: 'inherit' });
    }
  }
  for (const b of ['netwatch-collector', 'netwatch-sensor']) {
    if (!existsSync(join(dir, b))) throw new Error(`${join(dir, b)} is missing`);
  }
  return dir;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs = 20000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}

function run(bin, args, name, logs) {
  const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  logs[name] = log;
  for (const s of [p.stdout, p.stderr]) s.on('data', (d) => log.push(String(d)));
  return p;
}

/** Stack: one collector and its sensors. */
export class Stack {
  constructor(sensors) {
    this.sensors = sensors; // [{id, pcap (in common/oracle/testdata/pcaps) or path}]
    this.procs = [];
    this.logs = {};
  }

  async start() {
    this.bin = binaries();
    this.httpPort = await freePort();
    this.grpcPort = await freePort();
    this.base = `http://127.0.0.1:${this.httpPort}/`;
    await this.startCollector();
    for (const s of this.sensors) {
      this.procs.push(run(join(this.bin, 'netwatch-sensor'), ['--read', s.path ?? join(PCAPS, s.pcap), '--collector', `127.0.0.1:${this.grpcPort}`,
        '--speed', '1x', '--loop', '--rebase-time', '--metrics-listen', '', '--sensor-id', s.id], 'sensor ' + s.id, this.logs));
    }
    await waitFor('flows from every sensor', async () => {
      const { sensors } = await this.api('sensors');
      return sensors.length === this.sensors.length && sensors.every((s) => s.batches > 0);
    }, 30000);
  }

  async startCollector() {
    this.collector = run(join(this.bin, 'netwatch-collector'), ['--data-dir', '', '--http-listen', `127.0.0.1:${this.httpPort}`,
      '--grpc-listen', `127.0.0.1:${this.grpcPort}`, '--log-level', 'warn'], 'collector', this.logs);
    await waitFor('the collector', async () => (await fetch(this.base + 'api/v1/health')).ok, 15000, 100);
  }

  async stopCollector() {
    const p = this.collector;
    const done = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await done;
  }

  async api(path, params) {
    const q = params ? '?' + new URLSearchParams(params) : '';
    const res = await fetch(this.base + 'api/v1/' + path + q);
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return (res.headers.get('content-type') || '').includes('json') ? res.json() : res.text();
  }

  async stop() {
    for (const p of [...this.procs, this.collector]) {
      if (p && p.exitCode === null) {
        const done = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await Promise.race([done, sleep(5000)]);
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    }
  }

  dumpLogs() {
    for (const [name, log] of Object.entries(this.logs)) console.error(`--- ${name}\n${log.join('').slice(-4000)}`);
  }
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM); playwright cannot download a browser here`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    // No name outside the loopback stack resolves: the page can reach nothing else.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
}

/**
 * stepper returns the suites' test wrapper: when a step throws, it calls
 * onFail (the suite then dumps the processes' logs) and screenshots the page
 * into OUT as failure-<step>.png.
 */
export function stepper(getPage, onFail) {
  return (name, fn) => test(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      onFail();
      await getPage()?.screenshot({ path: join(OUT, 'failure-' + name.replace(/\W+/g, '-') + '.png') }).catch(() => {});
      throw e;
    }
  });
}
