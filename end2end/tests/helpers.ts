import { Browser, BrowserContext, Page, expect } from '@playwright/test';
import * as fs from 'fs';
import { startReference } from '../perf/reference';

/** A person: one browser context (own localStorage, own camera) with one page. */
export interface Person {
  name: string;
  ctx: BrowserContext;
  page: Page;
  /** Page errors and console errors seen so far. */
  errors: string[];
}

let counter = 0;
/** Names unique per test run, so a closing socket of one test never collides with the next. */
export function uniqueName(base: string): string {
  counter += 1;
  return `${base}${counter}-${Math.floor(Math.random() * 1e6)}`;
}

export async function newPerson(browser: Browser, name: string): Promise<Person> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = watchErrors(page);
  return { name, ctx, page, errors };
}

export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  // Anything the Content-Security-Policy blocks is an error too (Chromium also logs most of them).
  void page.addInitScript(() =>
    document.addEventListener('securitypolicyviolation', (e) =>
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`),
    ),
  );
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/** Routes the page's signaling socket through Playwright (call before the page loads), so a
 *  test can cut it from the server side; counts the sockets the page opened. */
export async function routeSignaling(page: Page): Promise<{ cut: () => Promise<void>; opened: () => number }> {
  let server: { close: () => Promise<void> } | undefined;
  let opened = 0;
  await page.routeWebSocket(/\/webrtc\//, (ws) => {
    opened += 1;
    server = ws.connectToServer();
  });
  return { cut: () => server!.close(), opened: () => opened };
}

/** Opens the call screen as `p.name` and waits until hydrated and connected to the relay. */
export async function goOnline(p: Person): Promise<void> {
  await p.page.goto(`/u/${encodeURIComponent(p.name)}`);
  await expectOnline(p.page);
}

export async function expectOnline(page: Page): Promise<void> {
  // The dot turns "online" only in the hydrated app, once the relay greeted us.
  await expect(page.locator('header .link')).toHaveClass(/link-online/);
}

export function status(page: Page) {
  return page.locator('p.status');
}

/** `a` rings `b` by tapping b in the online list; b sees the incoming-call sheet. */
export async function ring(a: Person, b: Person): Promise<void> {
  await a.page.getByRole('button', { name: `Call ${b.name}` }).click();
  await expect(status(a.page)).toHaveText(`Calling ${b.name}…`);
  await expect(b.page.getByRole('alertdialog')).toContainText(a.name);
}

/** Waits until `<video selector>` really plays: has a size and presents new frames. */
export async function expectPlaying(page: Page, selector: string): Promise<void> {
  const video = page.locator(selector);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(t0);
  // Count five presented frames.
  const frames = await video.evaluate(
    (v: HTMLVideoElement) =>
      new Promise<number>((resolve) => {
        let n = 0;
        const tick = () => (++n >= 5 ? resolve(n) : v.requestVideoFrameCallback(tick));
        v.requestVideoFrameCallback(tick);
      }),
  );
  expect(frames).toBe(5);
}

/** Records (in the page) the wall-clock time the remote video presents its first frame. */
export async function armFirstFrame(page: Page): Promise<void> {
  await page.evaluate(() => {
    const v = document.getElementById('remote-video') as HTMLVideoElement;
    v.requestVideoFrameCallback(() => ((window as any).__firstFrameAt = Date.now()));
  });
}

export async function firstFrameAt(page: Page): Promise<number> {
  await expect.poll(() => page.evaluate(() => (window as any).__firstFrameAt ?? 0)).toBeGreaterThan(0);
  return page.evaluate(() => (window as any).__firstFrameAt as number);
}

/** Keeps a handle on the page's own camera/mic tracks, to check later that they were stopped. */
export async function keepLocalTracks(page: Page): Promise<number> {
  return page.evaluate(() => {
    const v = document.getElementById('local-video') as HTMLVideoElement;
    const tracks = (v.srcObject as MediaStream | null)?.getTracks() ?? [];
    (window as any).__localTracks = tracks;
    return tracks.filter((t) => t.readyState === 'live').length;
  });
}

/** The kinds of the page's own live tracks, sorted: `['audio', 'video']` in a call. */
export async function localKinds(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const v = document.getElementById('local-video') as HTMLVideoElement;
    const tracks = (v.srcObject as MediaStream | null)?.getTracks() ?? [];
    return tracks.filter((t) => t.readyState === 'live').map((t) => t.kind).sort();
  });
}

export async function liveLocalTracks(page: Page): Promise<number> {
  return page.evaluate(
    () => ((window as any).__localTracks as MediaStreamTrack[]).filter((t) => t.readyState === 'live').length,
  );
}

export async function videosCleared(page: Page): Promise<boolean> {
  return page.evaluate(() =>
    ['local-video', 'remote-video'].every((id) => (document.getElementById(id) as HTMLVideoElement).srcObject === null),
  );
}

/** Two people online, `a` calls `b`, `b` accepts, both videos play. Returns setup figures. */
export async function connectCall(a: Person, b: Person): Promise<{ acceptToFrameA: number; acceptToFrameB: number }> {
  await ring(a, b);
  await armFirstFrame(a.page);
  await armFirstFrame(b.page);
  const acceptedAt = Date.now();
  await b.page.getByRole('button', { name: 'Accept' }).click();
  await expect(b.page.getByRole('alertdialog')).toHaveCount(0);
  await expect(status(a.page)).toContainText(`In call with ${b.name}`);
  await expect(status(b.page)).toContainText(`In call with ${a.name}`);
  await expectPlaying(a.page, '#remote-video');
  await expectPlaying(b.page, '#remote-video');
  return {
    acceptToFrameA: (await firstFrameAt(a.page)) - acceptedAt,
    acceptToFrameB: (await firstFrameAt(b.page)) - acceptedAt,
  };
}

/** Total audio energy received so far (WebRTC stats of the page's call). */
async function receivedAudioEnergy(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const pc = (window as any).duetPeerConnection as RTCPeerConnection;
    let energy = 0;
    (await pc.getStats()).forEach((r: any) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') energy = r.totalAudioEnergy ?? 0;
    });
    return energy;
  });
}

/** Audio energy received over the next `ms`. */
export async function audioEnergyOver(page: Page, ms: number): Promise<number> {
  const before = await receivedAudioEnergy(page);
  await page.waitForTimeout(ms); // a measurement window, not a synchronisation
  return (await receivedAudioEnergy(page)) - before;
}

const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's violations on the page as it is now, in its light and its dark colour scheme
 * (default rule set: WCAG 2.0–2.2 A/AA and best practices). Injected through DevTools
 * evaluation, which the page's Content-Security-Policy does not apply to, so the check runs
 * with the CSP on. One line per violation and element: "rule (impact) [scheme]: target — why".
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const found: string[] = [];
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme });
    const violations = await page.evaluate(async () => {
      const axe = (window as any).axe;
      const result = await axe.run(document, { resultTypes: ['violations'] });
      return result.violations.flatMap((v: any) =>
        v.nodes.map((n: any) => `${v.id} (${v.impact}): ${n.target.join(' ')} — ${n.failureSummary.replace(/\s+/g, ' ')}`),
      ) as string[];
    });
    found.push(...violations.map((v) => v.replace(':', ` [${colorScheme}]:`)));
  }
  await page.emulateMedia({ colorScheme: null });
  return found;
}

export interface ClassicServer {
  /** Origin of the server; the page is `${url}/classic?name=NAME`. */
  url: string;
  close(): void;
}

/** Serves the classic design's page (end2end/perf/classic.html) from its own origin on
 *  loopback, forwarding /webrtc/ to Duet (end2end/perf/reference.js). Its WebSocket carries no
 *  `early=1`: a classic client. */
export async function startClassic(duet: URL): Promise<ClassicServer> {
  return startReference(duet);
}
