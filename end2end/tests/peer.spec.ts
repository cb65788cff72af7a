import { test, expect, Page } from '@playwright/test';
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import {
  Person,
  audioEnergyOver,
  expectPlaying,
  goOnline,
  newPerson,
  status,
  uniqueName,
  videosCleared,
} from './helpers';

// Calls between Duet in Chromium and an independent WebRTC stack: aiortc (end2end/peer/peer.py,
// in the venv scripts/setup.sh makes), speaking the classic protocol over Duet's relay.
const PYTHON = path.join(__dirname, '..', '..', '.tools', 'peer-venv', 'bin', 'python');
const PEER = path.join(__dirname, '..', 'peer', 'peer.py');

/** The aiortc peer: its stdout events, and commands on its stdin. */
class Peer {
  events: any[] = [];
  private proc: ChildProcess;

  constructor(
    readonly name: string,
    baseURL: string,
    args: string[] = [],
  ) {
    const url = baseURL.replace(/^http/, 'ws');
    this.proc = spawn(PYTHON, [PEER, '--url', url, '--name', name, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => this.events.push(JSON.parse(line)));
  }

  command(c: object) {
    this.proc.stdin!.write(`${JSON.stringify(c)}\n`);
  }

  /** Waits for an event of `kind` matching `pred`, and returns it. */
  async event(kind: string, pred: (e: any) => boolean = () => true): Promise<any> {
    await expect.poll(() => this.events.some((e) => e.event === kind && pred(e)), { message: `peer: ${kind}` }).toBe(true);
    return this.events.find((e) => e.event === kind && pred(e));
  }

  /** What it has received so far: video frames, audio frames, loudest sample. */
  async stats(): Promise<{ video: number; audio: number; audio_peak: number }> {
    const before = this.events.filter((e) => e.event === 'stats').length;
    this.command({ cmd: 'stats' });
    await expect.poll(() => this.events.filter((e) => e.event === 'stats').length).toBeGreaterThan(before);
    return this.events.filter((e) => e.event === 'stats').pop();
  }

  /** Waits until it has received more video frames than `than` (the browser's camera). */
  async receivesVideo(than = 0): Promise<number> {
    let frames = 0;
    await expect.poll(async () => (frames = (await this.stats()).video), { message: 'peer receives video' }).toBeGreaterThan(than + 10);
    return frames;
  }

  stop() {
    this.proc.stdin!.end();
    this.proc.kill();
  }
}

let me: Person;
let peer: Peer | undefined;

test.beforeEach(async ({ browser }) => {
  me = await newPerson(browser, uniqueName('dora'));
  await goOnline(me);
});

test.afterEach(async () => {
  peer?.stop();
  peer = undefined;
  expect(me.errors, `${me.name} had no page or console errors`).toEqual([]);
  await me.ctx.close();
});

async function startPeer(baseURL: string | undefined, args: string[] = []): Promise<Peer> {
  peer = new Peer(uniqueName('aio'), baseURL!, args);
  await peer.event('online');
  await expect(me.page.getByRole('button', { name: `Call ${peer.name}` })).toBeVisible();
  return peer;
}

/** The page sees and hears the peer, and the peer gets the page's picture and sound. */
async function expectBothWays(page: Page, p: Peer) {
  await expect(status(page)).toContainText(`In call with ${p.name}`);
  await expectPlaying(page, '#remote-video');
  // The element plays the peer's sound too, whatever stream the peer put it in.
  const kinds = await page.evaluate(() =>
    ((document.getElementById('remote-video') as HTMLVideoElement).srcObject as MediaStream)
      .getTracks()
      .map((t) => `${t.kind}:${t.readyState}`)
      .sort(),
  );
  expect(kinds).toEqual(['audio:live', 'video:live']);
  await expect.poll(() => audioEnergyOver(page, 1000), { message: "the peer's tone is heard" }).toBeGreaterThan(0);
  await p.receivesVideo();
  await expect.poll(async () => (await p.stats()).audio_peak, { message: 'peer hears the page' }).toBeGreaterThan(0);
}

async function browserCalls(p: Peer) {
  await me.page.getByRole('button', { name: `Call ${p.name}` }).click();
  await p.event('ringing', (e) => e.by === me.name);
}

async function peerCalls(p: Peer) {
  p.command({ cmd: 'call', to: me.name });
  await expect(me.page.getByRole('alertdialog')).toContainText(p.name);
  await me.page.getByRole('button', { name: 'Accept' }).click();
}

for (const [grouping, direction] of [
  ['shared', 'the browser calls'],
  ['per-track', 'the peer calls'],
  ['none', 'the browser calls'],
  ['no-msid', 'the peer calls'],
] as const) {
  test(`aiortc peer, streams grouped "${grouping}": ${direction}; both see and hear each other`, async ({ baseURL }) => {
    const p = await startPeer(baseURL, ['--grouping', grouping]);
    await (direction === 'the browser calls' ? browserCalls(p) : peerCalls(p));
    await expectBothWays(me.page, p);
    await me.page.getByRole('button', { name: 'Hang up' }).click();
    await p.event('ended', (e) => e.why === 'hangup');
    await expect.poll(() => videosCleared(me.page)).toBe(true);
  });
}

test('aiortc peer hangs up: the page ends the call', async ({ baseURL }) => {
  const p = await startPeer(baseURL);
  await browserCalls(p);
  await expect(status(me.page)).toContainText(`In call with ${p.name}`);
  p.command({ cmd: 'hangup' });
  await expect(status(me.page)).toHaveText(`${p.name} hung up`);
  await expect.poll(() => videosCleared(me.page)).toBe(true);
});

test('aiortc peer declines: the page says so', async ({ baseURL }) => {
  const p = await startPeer(baseURL, ['--decline']);
  await browserCalls(p);
  await expect(status(me.page)).toHaveText(`${p.name} declined the call`);
});

test('camera off and on: the peer is told and its picture stops and comes back', async ({ baseURL }) => {
  const p = await startPeer(baseURL);
  await browserCalls(p);
  await expect(status(me.page)).toContainText(`In call with ${p.name}`);
  const before = await p.receivesVideo();
  await me.page.getByRole('button', { name: 'Turn camera off' }).click();
  await p.event('media', (e) => e.video === false);
  // No more frames arrive: two readings a second apart agree.
  let last = -1;
  await expect
    .poll(async () => {
      const now = (await p.stats()).video;
      const still = now === last;
      last = now;
      return still;
    }, { intervals: [1000], message: 'no frames with the camera off' })
    .toBe(true);
  expect(last).toBeGreaterThanOrEqual(before);
  await me.page.getByRole('button', { name: 'Turn camera on' }).click();
  await p.event('media', (e) => e.video === true);
  await p.receivesVideo(last);
});

test('a peer whose SDP the browser refuses: the call ends at once with the reason, never stuck connecting', async ({ baseURL }) => {
  const p = await startPeer(baseURL, ['--bad-sdp']);
  await browserCalls(p);
  await expect(status(me.page)).toHaveText(
    new RegExp(`^The call with ${p.name} could not be set up: the browser refused its connection details \\(.+\\)$`),
  );
  await p.event('ended', (e) => e.why === 'hangup');
  await expect.poll(() => videosCleared(me.page)).toBe(true);
});
