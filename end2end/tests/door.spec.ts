// A private server (`--access-code`): this spec starts its own Duet (the debug binary the suite
// was built with) on a free loopback port with an access code, and checks what a stranger and
// what a person with the code see: the door on a phone and a desktop in both languages (axe),
// a wrong code, the right one opening the app; an invite link (`duet invite`) letting two fresh
// devices in, who then call each other, and refusing a third.
import { test, expect, devices, type Browser } from '@playwright/test';
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { axeViolations, expectPlaying, uniqueName, watchErrors } from './helpers';

const CODE = 'tulip 🌷 7';
const root = path.join(__dirname, '..', '..');
let server: ChildProcess;
let base = '';
let stateDir = '';

test.beforeAll(async () => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-door-'));
  server = spawn(path.join(root, 'target', 'debug', 'duet'), ['--addr', `127.0.0.1:${port}`], {
    cwd: root,
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: 'duet',
      LEPTOS_SITE_ROOT: 'target/site',
      LEPTOS_SITE_PKG_DIR: 'pkg',
      RUST_LOG: 'warn',
      DUET_ACCESS_CODE: CODE,
      DUET_STATE_DIR: stateDir,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  base = `http://127.0.0.1:${port}`;
  await expect.poll(async () => (await fetch(`${base}/healthz`).catch(() => null))?.status ?? 0, { timeout: 20_000 }).toBe(200);
});

test.afterAll(() => {
  server?.kill();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

async function stranger(browser: Browser, phone: boolean) {
  const ctx = await browser.newContext(phone ? devices['Pixel 7'] : { viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const errors = watchErrors(page);
  return { ctx, page, errors };
}

for (const phone of [true, false]) {
  test(`the door on a ${phone ? 'phone' : 'desktop'}: both languages${phone ? ', a wrong code' : ''}, then the app`, async ({ browser }) => {
    const { ctx, page, errors } = await stranger(browser, phone);
    const me = uniqueName('door');
    const fetched: string[] = [];
    page.on('request', (r) => fetched.push(new URL(r.url()).pathname));
    await page.goto(`${base}/u/${me}`);
    await expect(page).toHaveURL(new RegExp(`/door\\?next=%2Fu%2F${me}$`));
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('This Duet is private');
    expect(await axeViolations(page), 'door, English').toEqual([]);
    // Nothing of the app behind it: no one online, no socket, not even the app's code.
    await expect(page.locator('.online, .person')).toHaveCount(0);
    expect(fetched.filter((p) => /\.(wasm|js)$/.test(p) && p.startsWith('/pkg/'))).toEqual([]);
    expect(fetched.filter((p) => p.startsWith('/webrtc/'))).toEqual([]);
    await page.getByRole('link', { name: '中文' }).click();
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('这是私人的 Duet');
    expect(await axeViolations(page), 'door, 中文').toEqual([]);
    // The server allows one address 5 tries at once (then one every 12 s): this spec makes 3
    // (a wrong one here on the phone, then two right ones); invite links are not tries.
    if (phone) {
      await page.getByLabel('访问码').fill('daisy');
      await page.getByRole('button', { name: '进入' }).click();
      await expect(page.getByRole('alert')).toHaveText('访问码不对，请再试一次。');
    }
    await page.getByLabel('访问码').fill(CODE);
    await page.getByRole('button', { name: '进入' }).click();
    await expect(page).toHaveURL(`${base}/u/${me}`);
    await expect(page.locator('header .link')).toHaveClass(/link-online/);
    expect(errors).toEqual([]);
    await ctx.close();
  });
}

test('an invite link lets two fresh devices in without the code, and they call each other', async ({ browser }) => {
  // Made like an owner makes one: `duet invite` with the server's code and state directory.
  const link = execFileSync(path.join(root, 'target', 'debug', 'duet'), ['invite', '--uses', '2', '--ttl', '1h', '--url', base], {
    cwd: root,
    env: { ...process.env, DUET_ACCESS_CODE: CODE, DUET_STATE_DIR: stateDir },
  })
    .toString()
    .trim();
  expect(link).toMatch(new RegExp(`^${base}/invite/i1\\.`));
  const [a, b] = [await stranger(browser, false), await stranger(browser, true)];
  const [aName, bName] = [uniqueName('in'), uniqueName('side')];
  for (const [p, name] of [[a, aName], [b, bName]] as const) {
    await p.page.goto(link);
    await expect(p.page).toHaveURL(`${base}/`);
    await p.page.goto(`${base}/u/${name}`);
    await expect(p.page.locator('header .link')).toHaveClass(/link-online/);
  }
  await a.page.getByRole('button', { name: `Call ${bName}` }).click();
  await b.page.getByRole('button', { name: 'Accept' }).click();
  await expectPlaying(a.page, '#remote-video');
  await expectPlaying(b.page, '#remote-video');
  // Used up: a third device gets the door, which says why.
  const c = await stranger(browser, false);
  await c.page.goto(link);
  await expect(c.page.getByRole('alert')).toHaveText(/invite link has expired or been used up/);
  expect([...a.errors, ...b.errors, ...c.errors]).toEqual([]);
  for (const p of [a, b, c]) await p.ctx.close();
});
