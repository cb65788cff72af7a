import { test, expect, type Page } from '@playwright/test';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { Person, connectCall, expectOnline, goOnline, newPerson, routeSignaling, status, uniqueName } from './helpers';

// In-call chat, files and screen sharing: everything goes over the call's own data channels and
// video sender, never through the relay.

let people: Person[] = [];

test.beforeEach(async ({ browser }) => {
  people = [await newPerson(browser, uniqueName('alice')), await newPerson(browser, uniqueName('bob'))];
  await Promise.all(people.map(goOnline));
  await expect(people[0].page.getByRole('button', { name: `Call ${people[1].name}` })).toBeVisible();
  await connectCall(people[0], people[1]);
});

test.afterEach(async () => {
  for (const p of people) {
    expect(p.errors, `${p.name} had no page or console errors`).toEqual([]);
    await p.ctx.close();
  }
});

function chatButton(page: Page) {
  return page.locator('#chat-button');
}

async function openChat(page: Page) {
  await chatButton(page).click();
  await expect(page.locator('#chat-panel')).toBeVisible();
  await expect(page.locator('#chat-input')).toBeFocused();
}

async function say(page: Page, text: string) {
  await page.locator('#chat-input').fill(text);
  await page.locator('#chat-input').press('Enter');
}

/** Bytes that are the same for a given seed: the receiver's copy must hash to the same. */
function fileOf(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >> 16;
  }
  return b;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** A file of `mib` MiB on disk (too big to hand over as a buffer). */
function bigFile(name: string, mib: number): string {
  const file = test.info().outputPath(name);
  fs.writeFileSync(file, fileOf(mib * 1024 * 1024, mib));
  return file;
}

/** Saves the last received file as a person would (its Save link) and hashes the download. */
async function savedHash(page: Page): Promise<string> {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('li.file.theirs[data-stage=done] a.save').last().click(),
  ]);
  return sha256(fs.readFileSync(await download.path()));
}

test('@smoke chat both ways: 中文 and emoji, unread badge, safe links, copy, nothing over the relay', async () => {
  const [a, b] = people;
  // Frames on the signaling socket: chat must never appear there.
  const relayed: string[] = [];
  for (const p of [a, b]) p.page.on('websocket', (ws) => ws.on('framesent', (f) => relayed.push(String(f.payload))));

  await expect(chatButton(a.page)).toBeVisible();
  await openChat(a.page);
  await expect(a.page.locator('#chat-panel')).toContainText('not through the server');
  await say(a.page, '你好 👋 see https://example.com/x?y=1, and javascript:alert(1)');
  await say(a.page, 'second');
  // b's panel is closed: a badge counts both.
  await expect(chatButton(b.page).locator('.badge')).toHaveText('2');
  await expect(chatButton(b.page)).toHaveAttribute('aria-label', 'Chat, 2 unread');
  await openChat(b.page);
  await expect(chatButton(b.page).locator('.badge')).toHaveCount(0);
  const first = b.page.locator('li.said.theirs').first();
  await expect(first).toContainText('你好 👋');
  await expect(first.locator('time')).toHaveText(/^\d\d:\d\d$/);
  const link = first.locator('a');
  await expect(link).toHaveCount(1);
  await expect(link).toHaveAttribute('href', 'https://example.com/x?y=1');
  await expect(link).toHaveAttribute('rel', 'noopener noreferrer');
  await expect(link).toHaveAttribute('target', '_blank');
  // The live region reads out the latest message from the peer.
  await expect(b.page.locator('#chat-panel [aria-live=polite]')).toHaveText(`${a.name}: second`);

  await say(b.page, '收到 ✅');
  await expect(a.page.locator('li.said.theirs')).toHaveText(/收到 ✅/);
  // Shift+Enter is a new line, not a send.
  await b.page.locator('#chat-input').fill('line one');
  await b.page.locator('#chat-input').press('Shift+Enter');
  await b.page.locator('#chat-input').pressSequentially('line two');
  await b.page.locator('#chat-input').press('Enter');
  await expect(a.page.locator('li.said.theirs').last().locator('p')).toHaveText('line one\nline two');

  // Copy conversation.
  await a.ctx.grantPermissions(['clipboard-read', 'clipboard-write']);
  await a.page.getByRole('button', { name: 'Copy conversation' }).click();
  await expect(a.page.getByRole('button', { name: 'Copied' })).toBeVisible();
  const copied = await a.page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toContain(`${a.name}: second`);
  expect(copied).toContain(`${b.name}: 收到 ✅`);

  // Escape closes the panel and focus returns to the chat button.
  await a.page.keyboard.press('Escape');
  await expect(a.page.locator('#chat-panel')).toHaveCount(0);
  await expect(chatButton(a.page)).toBeFocused();

  expect(relayed.filter((f) => f.includes('收到') || f.includes('second'))).toEqual([]);
});

test('bad frames from the peer are dropped with a note, the page keeps working', async () => {
  const [a, b] = people;
  await openChat(b.page);
  // A misbehaving peer: raw frames on a's own channels.
  const send = (channel: 'chat' | 'file', frames: (string | number[])[]) =>
    a.page.evaluate(
      ([channel, frames]) => {
        const ch = (window as any).duetChannels[channel as string] as RTCDataChannel;
        for (const f of frames as (string | number[])[]) {
          if (typeof f === 'string') ch.send(f);
          else ch.send(new Uint8Array(f));
        }
      },
      [channel, frames] as const,
    );
  const lastNote = b.page.locator('#chat-panel li.note').last();
  await send('chat', ['not json']);
  await expect(lastNote).toContainText('was dropped: it was not understood');
  await send('chat', [JSON.stringify({ t: 'text', text: 'x'.repeat(5000) })]);
  await expect(lastNote).toContainText('was dropped: it was too large');
  await send('chat', ['{"t":"wave"}']);
  await expect(lastNote).toContainText('was dropped: it was not understood');
  // A chunk of a file never offered, then an offer beyond the size cap.
  await send('file', [[0, 0, 0, 9, 1, 2, 3], JSON.stringify({ t: 'offer', id: 1, name: 'x', size: 1e12, mime: 'a/b' })]);
  await expect(lastNote).toContainText('was dropped: it was too large');
  await expect(b.page.locator('li.file')).toHaveCount(0);
  const floodStart = Date.now();
  await send('chat', Array.from({ length: 200 }, (_, i) => JSON.stringify({ t: 'text', text: `flood ${i}` })));
  await expect(lastNote).toContainText('too many arrived at once');
  await expect(b.page.locator('li.said.theirs').last()).not.toHaveText(/flood 199$/);
  // A burst of 30, then 10 a second for as long as the flood took to arrive.
  const flood = await b.page.locator('li.said.theirs').count();
  expect(flood).toBeLessThanOrEqual(30 + Math.ceil((Date.now() - floodStart) / 100));
  // Still works afterwards.
  await say(b.page, 'still here');
  await expect(b.page.locator('li.said.mine').last()).toContainText('still here');
});

test('a 5 MiB file: offer, receive, progress on both sides, same bytes; image preview', async () => {
  const [a, b] = people;
  await openChat(a.page);
  const data = fileOf(5 * 1024 * 1024, 7);
  await a.page.locator('#chat-panel input[type=file]').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: data });
  const sent = a.page.locator('li.file.mine').last();
  await expect(sent).toHaveAttribute('data-stage', 'offered');
  await expect(sent).toContainText('Waiting for the other side');
  await expect(chatButton(b.page).locator('.badge')).toHaveText('1');
  await openChat(b.page);
  const offer = b.page.locator('li.file.theirs').last();
  await expect(offer).toContainText('big.bin');
  await expect(offer).toContainText('5.0 MB · application/octet-stream');
  // Progress on both sides: record the values seen while it goes.
  for (const p of [a, b]) {
    await p.page.evaluate(() => {
      (window as any).progressSeen = new Set<number>();
      const tick = () => {
        document.querySelectorAll('li.file progress').forEach((e) => (window as any).progressSeen.add((e as HTMLProgressElement).value));
        requestAnimationFrame(tick);
      };
      tick();
    });
  }
  await offer.getByRole('button', { name: 'Receive' }).click();
  await expect(offer).toHaveAttribute('data-stage', 'done');
  await expect(sent).toHaveAttribute('data-stage', 'done');
  await expect(sent).toContainText('Sent');
  await expect(offer).toContainText('Received');
  expect(await savedHash(b.page)).toBe(sha256(data));
  for (const p of [a, b]) {
    const seen: number[] = await p.page.evaluate(() => [...(window as any).progressSeen]);
    expect(seen.some((v) => v > 0 && v < 100), `${p.name} saw progress between 0 and 100: ${seen}`).toBe(true);
  }

  // A photo: previewed on arrival.
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
  );
  await b.page.locator('#chat-panel input[type=file]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png });
  const photo = a.page.locator('li.file.theirs').last();
  await photo.getByRole('button', { name: 'Receive' }).click();
  await expect(photo.locator('img.preview')).toBeVisible();
  await expect(photo.locator('a.save')).toHaveAttribute('download', 'dot.png');
});

for (const side of ['sender', 'receiver'] as const) {
  test(`cancel mid-way from the ${side}: both sides stop`, async () => {
    const [a, b] = people;
    await openChat(a.page);
    await openChat(b.page);
    await a.page.locator('#chat-panel input[type=file]').setInputFiles(bigFile('huge.bin', 90));
    const mine = a.page.locator('li.file.mine').last();
    const theirs = b.page.locator('li.file.theirs').last();
    await theirs.getByRole('button', { name: 'Receive' }).click();
    await expect(theirs).toHaveAttribute('data-stage', 'going');
    await expect.poll(() => theirs.locator('progress').evaluate((e: HTMLProgressElement) => e.value)).toBeGreaterThan(0);
    const canceller = side === 'sender' ? mine : theirs;
    await canceller.getByRole('button', { name: 'Cancel' }).click();
    await expect(mine).toHaveAttribute('data-stage', 'cancelled');
    await expect(theirs).toHaveAttribute('data-stage', 'cancelled');
    await expect(theirs).toContainText('Cancelled');
    // The chat goes on.
    await say(b.page, 'after the cancel');
    await expect(a.page.locator('li.said.theirs').last()).toContainText('after the cancel');
  });
}

test('a hang-up mid-transfer ends it on both sides; the next call starts with an empty chat', async () => {
  const [a, b] = people;
  await openChat(a.page);
  await openChat(b.page);
  await a.page.locator('#chat-panel input[type=file]').setInputFiles(bigFile('huge.bin', 90));
  const theirs = b.page.locator('li.file.theirs').last();
  await theirs.getByRole('button', { name: 'Receive' }).click();
  await expect(theirs).toHaveAttribute('data-stage', 'going');
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(b.page)).toHaveText(`${a.name} hung up`);
  for (const p of [a, b]) await expect(p.page.locator('#chat-panel')).toHaveCount(0);
  await connectCall(a, b);
  await openChat(a.page);
  await expect(a.page.locator('#chat-panel li')).toHaveCount(1); // the intro note only
});

test('screen sharing: the peer sees other frames and a flag, shown whole; stopping returns to the camera', async () => {
  const [a, b] = people;
  const share = a.page.getByRole('button', { name: 'Share screen' });
  await expect(share).toBeVisible();
  const cameraId = await a.page.evaluate(() => {
    const pc = (window as any).duetPeerConnection as RTCPeerConnection;
    return pc.getSenders().find((s) => s.track?.kind === 'video')!.track!.label;
  });
  await share.click();
  await expect(a.page.getByRole('button', { name: 'Stop sharing' })).toHaveAttribute('aria-pressed', 'true');
  await expect(b.page.locator('.peer-flags')).toContainText(`${a.name} is sharing their screen`);
  await expect(b.page.locator('#remote-video')).toHaveCSS('object-fit', 'contain');
  await expect(a.page.locator('#local-video')).toHaveCSS('transform', 'none');
  const sent = await a.page.evaluate(() => {
    const pc = (window as any).duetPeerConnection as RTCPeerConnection;
    return pc.getSenders().find((s) => s.track?.kind === 'video')!.track!.label;
  });
  expect(sent).not.toBe(cameraId);
  // The sharer's own preview shows what is shared.
  await expect
    .poll(() => a.page.locator('#local-video').evaluate((v: HTMLVideoElement) => (v.srcObject as MediaStream)?.getVideoTracks()[0]?.label))
    .toBe(sent);
  // The peer's picture changes size to the screen's (the fake capture is not 640×480).
  await expect.poll(() => b.page.locator('#remote-video').evaluate((v: HTMLVideoElement) => `${v.videoWidth}x${v.videoHeight}`)).not.toBe('640x480');

  // Stopped from the browser's own "Stop sharing" bar: the track ends by itself.
  await a.page.evaluate(() => {
    const pc = (window as any).duetPeerConnection as RTCPeerConnection;
    const track = pc.getSenders().find((s) => s.track?.kind === 'video')!.track!;
    track.stop();
    track.dispatchEvent(new Event('ended'));
  });
  await expect(a.page.getByRole('button', { name: 'Share screen' })).toHaveAttribute('aria-pressed', 'false');
  await expect(b.page.locator('.peer-flags')).not.toContainText('sharing');
  await expect(b.page.locator('#remote-video')).toHaveCSS('object-fit', 'cover');
  await expect.poll(() => a.page.evaluate(() => {
    const pc = (window as any).duetPeerConnection as RTCPeerConnection;
    return pc.getSenders().find((s) => s.track?.kind === 'video')?.track?.label;
  })).toBe(cameraId);
  await expect.poll(() => b.page.locator('#remote-video').evaluate((v: HTMLVideoElement) => `${v.videoWidth}x${v.videoHeight}`)).toBe('640x480');
});

test('browsers without screen capture (phones) show no share button; the chat is there', async ({ browser }) => {
  // Android's Chrome and iOS Safari have no getDisplayMedia.
  const phone = await newPerson(browser, uniqueName('phone'));
  await phone.page.addInitScript(() => delete (MediaDevices.prototype as any).getDisplayMedia);
  const [a] = people;
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await goOnline(phone);
  await expect(a.page.getByRole('button', { name: `Call ${phone.name}` })).toBeVisible();
  await connectCall(a, phone);
  await expect(chatButton(phone.page)).toBeVisible();
  await expect(phone.page.getByRole('button', { name: 'Mute microphone' })).toBeVisible();
  await expect(phone.page.getByRole('button', { name: 'Share screen' })).toHaveCount(0);
  expect(phone.errors).toEqual([]);
  await phone.ctx.close();
});

test('the chat survives a signaling blip: history kept, messages flow both ways', async () => {
  const [a, b] = people;
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  const signaling = await routeSignaling(a.page);
  await a.page.reload();
  await expectOnline(a.page);
  await expect(a.page.getByRole('button', { name: `Call ${b.name}` })).toBeVisible();
  await connectCall(a, b);
  await openChat(a.page);
  await openChat(b.page);
  await say(a.page, 'before the blip');
  await expect(b.page.locator('li.said.theirs')).toHaveText([/before the blip/]);
  await signaling.cut();
  await expect.poll(signaling.opened, { message: 'the client reconnected by itself' }).toBe(2);
  await expectOnline(a.page);
  await say(b.page, 'after the blip');
  await say(a.page, 'me too');
  await expect(a.page.locator('li.said')).toHaveText([/before the blip/, /after the blip/, /me too/]);
  await expect(b.page.locator('li.said')).toHaveText([/before the blip/, /after the blip/, /me too/]);
});
