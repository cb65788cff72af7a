import { Browser, Page, chromium, expect, test } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  Person,
  connectCall,
  expectOnline,
  expectPlaying,
  ring,
  status,
  uniqueName,
  videosCleared,
  watchErrors,
} from '../tests/helpers';

// Calls across real NATs (see lab.sh for the map). run.sh starts, in the "internet" namespace:
// Duet at :3000 with its embedded STUN server only, at :3001 with coturn (time-limited
// credentials) too, at :3002 with a wrong TURN secret; coturn at :3478. (An expired credential
// cannot be staged reliably: the client fetches fresh ones before each ICE restart, which is the
// point; expiry itself is unit-tested in relay/ice.rs.)
const LAB = path.join(__dirname, 'lab.sh');
const STUN_ONLY = 'http://198.18.0.1:3000';
const WITH_TURN = 'http://198.18.0.1:3001';
const BAD_TURN = 'http://198.18.0.1:3002';
/** DUET_LAB_RUNS=5 repeats the timed cases for docs/perf.md. */
const RUNS = Number(process.env.DUET_LAB_RUNS ?? 1);

function lab(...args: string[]) {
  execFileSync(LAB, args, { stdio: 'inherit' });
}

async function browserIn(netns: string): Promise<Browser> {
  return chromium.launch({
    executablePath: path.join(__dirname, 'chromium'),
    env: { ...process.env, DUET_NETNS: netns },
    args: [
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
      // Plain http on a lab address: camera and service worker need a secure context.
      `--unsafely-treat-insecure-origin-as-secure=${STUN_ONLY},${WITH_TURN},${BAD_TURN}`,
      // Real host addresses in candidates (as with camera permission granted), not mDNS names.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // coturn's self-signed TLS certificate (run.sh makes it): trusted by its key, nothing else.
      ...(process.env.DUET_LAB_TURN_SPKI ? [`--ignore-certificate-errors-spki-list=${process.env.DUET_LAB_TURN_SPKI}`] : []),
    ],
  });
}

let homeA: Browser;
let homeB: Browser;
const people: Person[] = [];

test.beforeAll(async () => {
  [homeA, homeB] = await Promise.all([browserIn('duet-lan-a'), browserIn('duet-lan-b')]);
});

test.afterAll(async () => {
  await Promise.all([homeA?.close(), homeB?.close()]);
});

test.beforeEach(() => {
  lab('uplink', 'a1');
  for (const home of ['a', 'a2', 'b']) lab('firewall', home, 'open');
});

/** What a network going away may make the browser log, and nothing else. */
const NETWORK_NOISE = /WebSocket|ERR_ADDRESS_UNREACHABLE|ERR_NETWORK_CHANGED|ERR_INTERNET_DISCONNECTED/;

test.afterEach(async () => {
  for (const p of people.splice(0)) {
    expect(p.errors.filter((e) => !NETWORK_NOISE.test(e)), `${p.name}: no page errors`).toEqual([]);
    await p.ctx.close();
  }
});

/** Someone at home `browser`, online at `server`. */
async function online(browser: Browser, server: string, base: string): Promise<Person> {
  const ctx = await browser.newContext({ baseURL: server });
  const page = await ctx.newPage();
  // Every candidate the page gathers, and every gathering error (a refused TURN login).
  await page.addInitScript(() => {
    const w = window as any;
    w.__candidates = [];
    w.__candidateErrors = [];
    const Native = RTCPeerConnection;
    w.RTCPeerConnection = function (config?: RTCConfiguration) {
      const pc = new Native(config);
      pc.addEventListener('icecandidate', (e: RTCPeerConnectionIceEvent) => {
        if (e.candidate?.type) w.__candidates.push(e.candidate.type);
      });
      pc.addEventListener('icecandidateerror', (e: any) => w.__candidateErrors.push(e.errorCode));
      return pc;
    } as any;
    w.RTCPeerConnection.prototype = Native.prototype;
  });
  const person = { name: uniqueName(base), ctx, page, errors: watchErrors(page) };
  if (process.env.DUET_LAB_DEBUG) page.on('console', (m) => console.log(`${base}>`, m.text()));
  people.push(person);
  await page.goto(`/u/${person.name}`);
  await expectOnline(page);
  return person;
}

/** The selected candidate pair's path as the quality details name it, from getStats; with
 *  `relayProtocol`, how our end reaches its TURN server when it is relayed (udp, tcp, tls). */
async function pathOf(page: Page): Promise<{ local: string; remote: string; remoteAddress: string; relayProtocol?: string }> {
  return page.evaluate(async () => {
    const pc = (window as any).duetPeerConnection as RTCPeerConnection;
    const stats = await pc.getStats();
    let pairId = '';
    stats.forEach((s: any) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair: any = stats.get(pairId);
    const local: any = stats.get(pair.localCandidateId);
    const remote: any = stats.get(pair.remoteCandidateId);
    return {
      local: local.candidateType,
      remote: remote.candidateType,
      remoteAddress: remote.address,
      relayProtocol: local.relayProtocol,
    };
  });
}

/** `a` calls `b`, `b` accepts, both see each other. Returns Accept → first remote frame (ms). */
async function call(a: Person, b: Person): Promise<number[]> {
  const { acceptToFrameA, acceptToFrameB } = await connectCall(a, b);
  return [acceptToFrameA, acceptToFrameB];
}

async function hangUp(a: Person, b: Person) {
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(b.page)).toHaveText(`${a.name} hung up`);
}

/** A screenshot next to the main suite's (end2end/test-results/screens/lab-NAME.png). */
async function shot(page: Page, name: string) {
  await page.screenshot({ path: path.join(__dirname, '..', 'test-results', 'screens', `lab-${name}.png`) });
}

function figure(what: string, ms: number[]) {
  console.log(`[figure] ${what}: ${ms.map((v) => Math.round(v)).join(' / ')} ms`);
}

/** Both sides' path kinds: the most indirect end of each selected pair. */
async function expectPath(a: Person, b: Person, kind: 'host' | 'srflx' | 'relay') {
  for (const p of [a, b]) {
    const { local, remote } = await pathOf(p.page);
    const types = [local, remote];
    const seen = types.includes('relay') ? 'relay' : types.some((t) => t === 'srflx' || t === 'prflx') ? 'srflx' : 'host';
    expect(seen, `${p.name}: selected pair ${local} → ${remote}`).toBe(kind);
  }
  // The quality details say the same in words.
  await a.page.locator('button.quality').click();
  const words = { host: 'direct', srflx: 'via STUN', relay: 'via relay' }[kind];
  await expect(a.page.getByRole('dialog')).toContainText(words);
  await shot(a.page, `path-${kind}`);
  await a.page.keyboard.press('Escape');
}

test('same home network: a direct call (host candidates)', async () => {
  for (let run = 0; run < RUNS; run++) {
    const a = await online(homeB, STUN_ONLY, 'ana');
    const b = await online(homeB, STUN_ONLY, 'ben');
    figure('lab direct: Accept → first remote frame (caller / callee)', await call(a, b));
    await expectPath(a, b, 'host');
    await hangUp(a, b);
  }
});

test('both behind cone NATs, embedded STUN only: connects through the NATs (srflx)', async () => {
  lab('nat', 'a', 'cone');
  lab('nat', 'b', 'cone');
  for (let run = 0; run < RUNS; run++) {
    const a = await online(homeA, STUN_ONLY, 'ana');
    const b = await online(homeB, STUN_ONLY, 'ben');
    figure('lab srflx: Accept → first remote frame (caller / callee)', await call(a, b));
    await expectPath(a, b, 'srflx');
    await hangUp(a, b);
  }
});

/** The call ends on both sides within 15 s of the Accept with `message`, cleanly. */
async function expectNoConnection(a: Person, b: Person, message: RegExp) {
  await ring(a, b);
  const acceptedAt = Date.now();
  await b.page.getByRole('button', { name: 'Accept' }).click();
  for (const [p, other] of [
    [a, b],
    [b, a],
  ]) {
    await expect(status(p.page)).toHaveText(message, { timeout: 15_000 });
    expect(Date.now() - acceptedAt, `${p.name} told within 15 s`).toBeLessThan(15_000);
    await expect(status(p.page)).toContainText(other.name);
    // Cleanly: the camera is off, no video left, ready for the next call.
    await expect.poll(() => videosCleared(p.page)).toBe(true);
    await expect(p.page.getByRole('button', { name: 'Hang up' })).toHaveCount(0);
  }
  await shot(a.page, `no-path-${message.source.includes('TURN') ? 'needs-turn' : 'refused'}`);
}

test('both behind symmetric NATs, STUN only: does not connect and says a TURN server is needed', async () => {
  lab('nat', 'a', 'symmetric');
  lab('nat', 'b', 'symmetric');
  const a = await online(homeA, STUN_ONLY, 'ana');
  const b = await online(homeB, STUN_ONLY, 'ben');
  await expectNoConnection(a, b, /needs a relay server \(TURN\)/);
});

test('both behind symmetric NATs with coturn: connects through the relay', async () => {
  lab('nat', 'a', 'symmetric');
  lab('nat', 'b', 'symmetric');
  for (let run = 0; run < RUNS; run++) {
    const a = await online(homeA, WITH_TURN, 'ana');
    const b = await online(homeB, WITH_TURN, 'ben');
    figure('lab relay: Accept → first remote frame (caller / callee)', await call(a, b));
    await expectPath(a, b, 'relay');
    await hangUp(a, b);
  }
});

for (const [firewall, network, protocol] of [
  ['no-udp', 'an office network that blocks UDP', 'tcp'],
  ['web-only', 'a network that lets out only web traffic and TURN over TLS', 'tls'],
] as const) {
  test(`${network}: the call goes through coturn over ${protocol.toUpperCase()}`, async () => {
    lab('firewall', 'a', firewall);
    lab('nat', 'b', 'symmetric');
    for (let run = 0; run < RUNS; run++) {
      const a = await online(homeA, WITH_TURN, 'ana');
      const b = await online(homeB, WITH_TURN, 'ben');
      figure(`lab relay over ${protocol}: Accept → first remote frame (caller / callee)`, await call(a, b));
      await expectPath(a, b, 'relay');
      // Home A reaches coturn only this way; its peer, free to use UDP, does (relayed or not).
      expect((await pathOf(a.page)).relayProtocol, `${a.name} reaches TURN over`).toBe(protocol);
      expect(['udp', undefined], `${b.name}'s end`).toContain((await pathOf(b.page)).relayProtocol);
      await hangUp(a, b);
    }
  });
}

test('a wrong TURN credential is refused by coturn: no relay candidate, the call says it could not connect', async () => {
  lab('nat', 'a', 'symmetric');
  lab('nat', 'b', 'symmetric');
  const a = await online(homeA, BAD_TURN, 'ana');
  const b = await online(homeB, BAD_TURN, 'ben');
  await expectNoConnection(a, b, /^Could not connect to .*; the call ended$/);
  for (const p of [a, b]) {
    const candidates: string[] = await p.page.evaluate(() => (window as any).__candidates);
    const errors: number[] = await p.page.evaluate(() => (window as any).__candidateErrors);
    expect(candidates, `${p.name} gathered`).not.toContain('relay');
    expect(candidates.length, `${p.name} gathered some candidates`).toBeGreaterThan(0);
    // 401: coturn refused the credential.
    expect(errors, `${p.name}: TURN refused the login`).toContain(401);
  }
});

/**
 * Records in the page, as wall-clock times (ms), when the remote video decodes a new frame and
 * when audio packets arrive (getStats every 50 ms): what a person sees and hears.
 */
async function recordMedia(page: Page) {
  await page.evaluate(() => {
    const w = window as any;
    w.__frames = [];
    w.__audio = [];
    let [packets, frames] = [-1, -1];
    w.__mediaTimer = setInterval(async () => {
      const pc = w.duetPeerConnection as RTCPeerConnection | undefined;
      if (!pc) return;
      (await pc.getStats()).forEach((r: any) => {
        if (r.type !== 'inbound-rtp') return;
        if (r.kind === 'audio' && r.packetsReceived !== packets) {
          packets = r.packetsReceived;
          w.__audio.push(Date.now());
        }
        if (r.kind === 'video' && r.framesDecoded !== frames) {
          frames = r.framesDecoded;
          w.__frames.push(Date.now());
        }
      });
    }, 50);
  });
}

/** The first of `key`'s times after `since` that ends a gap of at least `gap` ms: it is back. */
async function resumedAt(page: Page, key: '__frames' | '__audio', since: number, gap = 400, timeout = 20_000): Promise<number> {
  let at = 0;
  await expect
    .poll(
      async () => {
        const times: number[] = await page.evaluate((k) => (window as any)[k], key);
        const i = times.findIndex((t, k) => k > 0 && t > since && t - Math.max(times[k - 1], since) >= gap);
        at = i >= 0 ? times[i] : 0;
        return at;
      },
      { timeout, message: `${key} again` },
    )
    .toBeGreaterThan(0);
  return at;
}

// Home A's person moves; the caller restarts ICE, whoever moved (the callee's move shows as a
// stall on both sides, and its signaling socket is replaced on the new uplink meanwhile).
for (const mover of ['caller', 'callee'] as const) {
  test(`network switch mid-call, the ${mover} moving: the call comes back by itself over the new uplink (ICE restart)`, async () => {
    lab('nat', 'a', 'cone');
    lab('nat', 'a2', 'cone');
    lab('nat', 'b', 'cone');
    const [sound, picture]: number[][] = [[], []];
    for (let run = 0; run < RUNS; run++) {
      lab('uplink', 'a1');
      // With TURN configured (through the cone NATs the path stays srflx): a restart takes fresh
      // credentials, which the caller's connection must take too.
      const a = await online(homeA, WITH_TURN, 'ana');
      const b = await online(homeB, WITH_TURN, 'ben');
      if (mover === 'caller') await call(a, b);
      else await call(b, a);
      const caller = mover === 'caller' ? a : b;
      const turnUsers = () =>
        caller.page.evaluate(() =>
          ((window as any).duetPeerConnection as RTCPeerConnection).getConfiguration().iceServers!.map((s) => s.username ?? ''),
        );
      const usersBefore = await turnUsers();
      expect(usersBefore.join(''), 'the caller has TURN credentials').not.toBe('');
      // a's side of the path, as b sees it: home A's first public address.
      expect((await pathOf(b.page)).remoteAddress).toBe('198.18.0.10');
      await recordMedia(a.page);
      await recordMedia(b.page);
      if (run === 0) {
        await a.page.locator('#chat-button').click();
        await a.page.locator('#chat-input').fill('before the move');
        await a.page.locator('#chat-input').press('Enter');
        await expect(b.page.locator('#chat-button .badge')).toHaveText('1');
      }
      const movedAt = Date.now();
      lab('uplink', 'a2'); // Wi-Fi gone, mobile data: a new public address
      const backOn = async (key: '__frames' | '__audio', timeout: number) => {
        const [ta, tb] = [await resumedAt(a.page, key, movedAt, 400, timeout), await resumedAt(b.page, key, movedAt, 400, timeout)];
        console.log(`  ${key} back after ${ta - movedAt} ms at a, ${tb - movedAt} ms at b`);
        return Math.max(ta, tb) - movedAt;
      };
      const heard = await backOn('__audio', 20_000);
      sound.push(heard);
      expect(heard, 'the call is back (ICE restarted, media on both sides) within 5 s of the move').toBeLessThan(5_000);
      // The picture follows once the sender's bandwidth estimate has recovered from the outage.
      picture.push(await backOn('__frames', 20_000));
      await expectPlaying(a.page, '#remote-video');
      await expectPlaying(b.page, '#remote-video');
      await expect(status(a.page)).toContainText(`In call with ${b.name}`);
      await expect(status(b.page)).toContainText(`In call with ${a.name}`);
      expect((await pathOf(b.page)).remoteAddress, 'over the second uplink').toBe('198.18.0.12');
      // (A TURN username is "expiry:name": fresh ones differ from those the call began with.)
      expect(await turnUsers(), 'the restart took fresh TURN credentials').not.toEqual(usersBefore);
      if (run === 0) {
        // The chat rides the same connection: its channels and history survive the ICE restart.
        await a.page.locator('#chat-input').fill('after the move');
        await a.page.locator('#chat-input').press('Enter');
        await b.page.locator('#chat-button').click();
        await expect(b.page.locator('li.said.theirs')).toHaveText([/before the move/, /after the move/]);
      }
      await hangUp(a, b);
    }
    figure(`lab network switch, the ${mover} moving: move → sound on both sides again`, sound);
    figure(`lab network switch, the ${mover} moving: move → frames on both sides again`, picture);
  });
}

test('the signaling socket drops for 3 s during the offer/answer exchange: the call still connects', async () => {
  lab('nat', 'a', 'cone');
  lab('nat', 'b', 'cone');
  const a = await online(homeA, STUN_ONLY, 'ana');
  const b = await online(homeB, STUN_ONLY, 'ben');
  // a's socket goes through Playwright: right after a's offer has left, it is cut, and every
  // reconnect is refused for 3 s.
  let downUntil = 0;
  let opened = 0;
  await a.page.routeWebSocket(/\/webrtc\//, (ws) => {
    opened += 1;
    if (Date.now() < downUntil) return ws.close({ code: 1011, reason: 'lab: network down' });
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      server.send(m);
      if (typeof m === 'string' && JSON.parse(m).type === 'offer' && downUntil === 0) {
        downUntil = Date.now() + 3_000;
        void server.close();
      }
    });
    server.onMessage((m) => ws.send(m));
  });
  await a.page.reload();
  await expectOnline(a.page);
  expect(opened).toBe(1);
  await call(a, b);
  expect(downUntil, 'the socket was cut during the exchange').toBeGreaterThan(0);
  expect(opened, 'reconnects were refused, then one went through').toBeGreaterThan(2);
  await expectPath(a, b, 'srflx');
  await hangUp(a, b);
});

test('the relay restarts mid-call: both sides learn the call is gone, hang up cleanly, and can call again', async () => {
  lab('nat', 'a', 'cone');
  lab('nat', 'b', 'cone');
  const a = await online(homeA, STUN_ONLY, 'ana');
  const b = await online(homeB, STUN_ONLY, 'ben');
  await call(a, b);
  execFileSync(path.join(__dirname, 'server.sh'), ['restart', '3000'], { stdio: 'inherit' });
  // Back on the restarted relay, each side asks after the call, which it no longer knows.
  for (const [p, other] of [
    [a, b],
    [b, a],
  ]) {
    await expect(status(p.page)).toHaveText(`The server restarted; the call with ${other.name} ended`);
    await expect.poll(() => videosCleared(p.page)).toBe(true);
    await expectOnline(p.page);
  }
  // The restarted relay works: a new call connects.
  await call(a, b);
  await hangUp(a, b);
});
