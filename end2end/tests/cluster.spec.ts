import { test, expect } from '@playwright/test';
import { ChildProcess, spawn, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { Person, newPerson, uniqueName, expectOnline, status, ring, expectPlaying, connectCall } from './helpers';

// Three Duet nodes (the debug binary `cargo leptos end-to-end` built) on a Redis of this file's
// own: alice's page on node one, carol's on node three, bob's through a small TCP load balancer
// that sends him to node two — until node two is killed with SIGKILL mid-call, after which it
// sends new connections to node three, as a load balancer with health checks would.

const root = path.join(__dirname, '..', '..');
const binary = path.join(root, 'target', 'debug', 'duet');
const logs = path.join(__dirname, '..', 'test-results', 'cluster-logs');

let redis: ChildProcess;
let socketDir: string;
const nodes: { [id: string]: { proc: ChildProcess; port: number } } = {};
let balancer: net.Server;
let balanceTo = 0;
const people: Person[] = [];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Until `check` passes (a process we started has no readiness event to await). */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} within ${ms} ms`);
}

async function startNode(id: string): Promise<void> {
  const port = await freePort();
  const log = fs.openSync(path.join(logs, `${id}.log`), 'w');
  const proc = spawn(binary, ['--addr', `127.0.0.1:${port}`, '--node-id', id], {
    cwd: root,
    env: {
      ...process.env,
      DUET_REDIS_URL: `redis+unix://${socketDir}/redis.sock`,
      // Long enough to come back on another node; same on every node (they refuse otherwise).
      DUET_GRACE_SECS: '30',
      LEPTOS_OUTPUT_NAME: 'duet',
      LEPTOS_SITE_ROOT: 'target/site',
      LEPTOS_SITE_PKG_DIR: 'pkg',
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', log, log],
  });
  nodes[id] = { proc, port };
  await until(`node ${id} ready`, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok);
}

function redisCli(...args: string[]): string {
  return execFileSync('redis-cli', ['-s', `${socketDir}/redis.sock`, ...args]).toString().trim();
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async ({ browser }) => {
  fs.mkdirSync(logs, { recursive: true });
  socketDir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-e2e-redis-'));
  redis = spawn('redis-server', ['--port', '0', '--save', '', '--appendonly', 'no', '--unixsocket', `${socketDir}/redis.sock`, '--dir', socketDir], {
    stdio: 'ignore',
  });
  await until('redis up', async () => fs.existsSync(`${socketDir}/redis.sock`));
  for (const id of ['one', 'two', 'three']) await startNode(id);
  balanceTo = nodes.two.port;
  balancer = net.createServer((client) => {
    const upstream = net.connect(balanceTo, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => balancer.listen(0, '127.0.0.1', r));
  const via = {
    alice: `http://127.0.0.1:${nodes.one.port}`,
    bob: `http://127.0.0.1:${(balancer.address() as net.AddressInfo).port}`,
    carol: `http://127.0.0.1:${nodes.three.port}`,
  };
  for (const [base, url] of Object.entries(via)) {
    const p = await newPerson(browser, uniqueName(base));
    await p.page.goto(`${url}/u/${encodeURIComponent(p.name)}`);
    await expectOnline(p.page);
    people.push(p);
  }
  // Everyone sees everyone, whichever node they are on.
  for (const p of people) {
    for (const other of people.filter((o) => o !== p)) {
      await expect(p.page.getByRole('button', { name: `Call ${other.name}` })).toBeVisible();
    }
  }
});

test.afterAll(async () => {
  for (const p of people) await p.ctx.close();
  balancer?.close();
  for (const { proc } of Object.values(nodes)) proc.kill('SIGKILL');
  redis?.kill('SIGKILL');
  fs.rmSync(socketDir, { recursive: true, force: true });
});

test.afterEach(() => {
  for (const p of people) expect(p.errors, `${p.name}'s page errors`).toEqual([]);
});

test('across nodes: a full call, hang-up, decline and busy', async () => {
  const [alice, bob, carol] = people;
  await connectCall(alice, bob);
  await alice.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(bob.page)).toHaveText(`${alice.name} hung up`);

  await ring(alice, bob);
  await bob.page.getByRole('button', { name: 'Decline' }).click();
  await expect(status(alice.page)).toHaveText(`${bob.name} declined the call`);

  await ring(alice, bob);
  await carol.page.getByLabel("Friend's name").fill(bob.name);
  await carol.page.getByRole('button', { name: 'Call', exact: true }).click();
  await expect(status(carol.page)).toHaveText(`${bob.name} is busy in another call`);
  await bob.page.getByRole('button', { name: 'Accept' }).click();
  await expect(status(alice.page)).toContainText(`In call with ${bob.name}`);
  await bob.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(alice.page)).toHaveText(`${bob.name} hung up`);
});

test("kill -9 of bob's node mid-call: media flows on, bob's page comes back on node three and the call goes on", async () => {
  test.setTimeout(90_000);
  const [alice, bob, carol] = people;
  await connectCall(alice, bob);
  // The balancer stops sending anyone to node two; node two dies without a word.
  balanceTo = nodes.three.port;
  nodes.two.proc.kill('SIGKILL');
  const killed = Date.now();
  // Peer to peer: the pictures never stop.
  await expectPlaying(alice.page, '#remote-video');
  await expectPlaying(bob.page, '#remote-video');
  // Bob's page reconnects (to node three) with the same secret, within the grace period.
  await expectOnline(bob.page);
  // Node two's lease runs out and the cluster sweeps it: alice's list is right within 8 s —
  // bob is still there (on node three now), and the call was never ended.
  await until('node two swept', async () => redisCli('ZSCORE', 'duet:due', 'n:two') === '', 10_000);
  const swept = Date.now() - killed;
  console.log(`[figure] cluster: node two swept ${swept} ms after SIGKILL`);
  expect(swept).toBeLessThan(8_000);
  await expect(carol.page.getByRole('button', { name: `Call ${bob.name}` })).toBeVisible();
  await expect(status(alice.page)).toContainText(`In call with ${bob.name}`);
  await expect(status(bob.page)).toContainText(`In call with ${alice.name}`);
  await expectPlaying(alice.page, '#remote-video');
  // Signaling between them still works, through node three: a hang-up arrives.
  await alice.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(bob.page)).toHaveText(`${alice.name} hung up`);
  for (const [p, other] of [[alice, bob], [alice, carol], [bob, alice]] as const) {
    await expect(p.page.getByRole('button', { name: `Call ${other.name}` })).toBeVisible();
  }
});
