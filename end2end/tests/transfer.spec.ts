// @perf: how fast a file goes from one Duet page to another in a call, on loopback, and what the
// browser's data channel itself does with other chunk sizes (the reason for Duet's 256 KiB).
// Report-only, like perf.spec.ts: figures as `[figure]` lines; docs/perf.md quotes them.
import { test, expect, Page } from '@playwright/test';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { connectCall, goOnline, newPerson, uniqueName } from './helpers';

const MIB = 1024 * 1024;
const SIZE = 50 * MIB;

test('@perf a 50 MiB file between two Duet pages in a call', async ({ browser }) => {
  test.setTimeout(180_000);
  const [a, b] = [await newPerson(browser, uniqueName('alice')), await newPerson(browser, uniqueName('bob'))];
  await Promise.all([a, b].map(goOnline));
  await expect(a.page.getByRole('button', { name: `Call ${b.name}` })).toBeVisible();
  await connectCall(a, b);
  const data = crypto.randomBytes(SIZE);
  const file = test.info().outputPath('fifty.bin');
  fs.writeFileSync(file, data);
  const digest = crypto.createHash('sha256').update(data).digest('hex');
  for (const p of [a, b]) await p.page.locator('#chat-button').click();
  // With both cameras on (a call as it is), then five times with them off (the transfer's own
  // cost, without two video encoders and decoders on the same two cores; one run of the same
  // build varies by half on this shared machine, hence five).
  const off: number[] = [];
  for (const cameras of ['on', 'off', 'off', 'off', 'off', 'off']) {
    if (cameras === 'off' && off.length === 0) {
      for (const p of [a, b]) await p.page.getByRole('button', { name: 'Turn camera off' }).click();
    }
    await a.page.locator('#chat-panel input[type=file]').setInputFiles(file);
    const offer = b.page.locator('li.file.theirs').last();
    // The moment the receiving page marks the file done, taken in the page (one clock: same
    // machine). Not polled: polling every frame kept the page drawing, ~0.4 s of its main
    // thread per run (a CPU profile), and expect's back-off polling would blur the figure.
    await b.page.evaluate(() => {
      (window as any).__doneAt = new Promise<number>((resolve) => {
        const seen = new MutationObserver(() => {
          if ([...document.querySelectorAll('li.file.theirs')].pop()?.getAttribute('data-stage') !== 'done') return;
          seen.disconnect();
          resolve(Date.now());
        });
        seen.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-stage'] });
      });
    });
    const start = Date.now();
    await offer.getByRole('button', { name: 'Receive' }).click();
    const doneAt = await b.page.evaluate(() => (window as any).__doneAt as Promise<number>);
    const seconds = (doneAt - start) / 1000;
    const [download] = await Promise.all([b.page.waitForEvent('download'), offer.locator('a.save').click()]);
    const got = fs.readFileSync(await download.path());
    expect(crypto.createHash('sha256').update(got).digest('hex')).toBe(digest);
    const rate = SIZE / 1e6 / seconds;
    if (cameras === 'off') off.push(rate);
    console.log(`[figure] file transfer, 50 MiB, Duet in a call, cameras ${cameras} (256 KiB chunks): ${seconds.toFixed(2)} s = ${rate.toFixed(1)} MB/s`);
  }
  const sorted = [...off].sort((x, y) => x - y);
  console.log(`[figure] file transfer, 50 MiB, cameras off: median of ${sorted.length} ${sorted[2].toFixed(1)} MB/s`);
  for (const p of [a, b]) {
    expect(p.errors).toEqual([]);
    await p.ctx.close();
  }
});

/** Two bare RTCPeerConnections in two contexts, SDP passed by the test: the channel alone. */
async function rawChannel(a: Page, b: Page): Promise<void> {
  const offer = await a.evaluate(async () => {
    const pc = new RTCPeerConnection();
    (window as any).pc = pc;
    (window as any).dc = pc.createDataChannel('bench', { negotiated: true, id: 0 });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((r) => (pc.iceGatheringState === 'complete' ? r() : (pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r())));
    return pc.localDescription!.sdp;
  });
  const answer = await b.evaluate(async (sdp) => {
    const pc = new RTCPeerConnection();
    (window as any).pc = pc;
    const dc = pc.createDataChannel('bench', { negotiated: true, id: 0 });
    dc.binaryType = 'arraybuffer';
    const w = window as any;
    w.received = 0;
    dc.onmessage = (e) => {
      w.received += (e.data as ArrayBuffer).byteLength;
      if (w.received >= w.expected) w.arrived(Date.now());
    };
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise<void>((r) => (pc.iceGatheringState === 'complete' ? r() : (pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r())));
    return pc.localDescription!.sdp;
  }, offer);
  await a.evaluate(async (sdp) => {
    await (window as any).pc.setRemoteDescription({ type: 'answer', sdp });
    const dc = (window as any).dc as RTCDataChannel;
    await new Promise<void>((r) => (dc.readyState === 'open' ? r() : (dc.onopen = () => r())));
  }, answer);
}

test('@perf the data channel alone: 50 MiB in 16, 64 and 256 KiB messages', async ({ browser }) => {
  test.setTimeout(180_000);
  const [ca, cb] = [await browser.newContext(), await browser.newContext()];
  const [a, b] = [await ca.newPage(), await cb.newPage()];
  for (const p of [a, b]) await p.goto('/healthz');
  await rawChannel(a, b);
  for (const chunk of [16 * 1024, 64 * 1024, 256 * 1024]) {
    // The moment the last byte arrives, taken in the receiving page (as for Duet's pages).
    await b.evaluate((size) => {
      const w = window as any;
      w.received = 0;
      w.expected = size;
      w.doneAt = new Promise<number>((resolve) => (w.arrived = resolve));
    }, SIZE);
    const start = Date.now();
    // The same flow control as Duet's: up to 8 MiB queued, refilled below 2 MiB.
    await a.evaluate(
      async ([chunk, size]) => {
        const dc = (window as any).dc as RTCDataChannel;
        dc.bufferedAmountLowThreshold = 2 * 1024 * 1024;
        const piece = new Uint8Array(chunk);
        for (let sent = 0; sent < size; sent += chunk) {
          if (dc.bufferedAmount > 8 * 1024 * 1024) await new Promise((r) => (dc.onbufferedamountlow = r));
          dc.send(piece);
        }
      },
      [chunk, SIZE] as const,
    );
    const doneAt = await b.evaluate(() => (window as any).doneAt as Promise<number>);
    const seconds = (doneAt - start) / 1000;
    console.log(`[figure] data channel alone, 50 MiB in ${chunk / 1024} KiB messages: ${seconds.toFixed(2)} s = ${(SIZE / 1e6 / seconds).toFixed(1)} MB/s`);
  }
  await ca.close();
  await cb.close();
});
