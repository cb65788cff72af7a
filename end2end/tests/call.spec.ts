import { test, expect, devices, type Page } from '@playwright/test';
import {
  Person,
  audioEnergyOver,
  connectCall,
  expectOnline,
  expectPlaying,
  goOnline,
  keepLocalTracks,
  liveLocalTracks,
  localKinds,
  newPerson,
  ring,
  routeSignaling,
  status,
  uniqueName,
  videosCleared,
  watchErrors,
} from './helpers';

let people: Person[] = [];

test.beforeEach(async ({ browser }) => {
  people = [await newPerson(browser, uniqueName('alice')), await newPerson(browser, uniqueName('bob'))];
  await Promise.all(people.map(goOnline));
  const [a, b] = people;
  // Each sees the other in the online list.
  await expect(a.page.getByRole('button', { name: `Call ${b.name}` })).toBeVisible();
  await expect(b.page.getByRole('button', { name: `Call ${a.name}` })).toBeVisible();
});

test.afterEach(async () => {
  for (const p of people) {
    expect(p.errors, `${p.name} had no page or console errors`).toEqual([]);
    await p.ctx.close();
  }
});

test('@smoke a calls b, b accepts, both see each other; a hangs up and b returns to idle', async () => {
  const [a, b] = people;
  const t = await connectCall(a, b);
  console.log(`[figure] call setup, Accept click -> first remote frame: caller ${t.acceptToFrameA} ms, callee ${t.acceptToFrameB} ms`);
  test.info().annotations.push({ type: 'setup-ms', description: JSON.stringify(t) });

  // Own video is the small picture-in-picture, remote fills the screen.
  const local = await a.page.locator('#local-video').boundingBox();
  const remote = await a.page.locator('#remote-video').boundingBox();
  expect(local!.width * local!.height).toBeLessThan((remote!.width * remote!.height) / 4);

  // Camera and microphone (the microphone joins once the connection is up).
  for (const p of [a, b]) await expect.poll(() => localKinds(p.page)).toEqual(['audio', 'video']);
  expect(await keepLocalTracks(a.page)).toBe(2);
  expect(await keepLocalTracks(b.page)).toBe(2);
  await a.page.getByRole('button', { name: 'Hang up' }).click();

  await expect(status(a.page)).toHaveText(`Call with ${b.name} ended`);
  await expect(status(b.page)).toHaveText(`${a.name} hung up`);
  for (const p of [a, b]) {
    await expect.poll(() => liveLocalTracks(p.page), { message: `${p.name}'s camera and mic stopped` }).toBe(0);
    expect(await videosCleared(p.page)).toBe(true);
    await expect(p.page.getByRole('button', { name: 'Call', exact: true })).toBeVisible();
  }
});

test('the callee can hang up too, and both can call again', async () => {
  const [a, b] = people;
  await connectCall(a, b);
  await keepLocalTracks(a.page);
  await b.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(a.page)).toHaveText(`${b.name} hung up`);
  await expect.poll(() => liveLocalTracks(a.page)).toBe(0);
  // Roles swapped: b calls a this time, using the friend field.
  await b.page.getByLabel("Friend's name").fill(a.name);
  await b.page.getByRole('button', { name: 'Call', exact: true }).click();
  await expect(a.page.getByRole('alertdialog')).toContainText(b.name);
  await a.page.getByRole('button', { name: 'Accept' }).click();
  await expect(status(b.page)).toContainText(`In call with ${a.name}`);
  await expect(status(a.page)).toContainText(`In call with ${b.name}`);
});

test('a call placed on a settled page sends an offer made beforehand, the answer comes inside the accept; the next offer is made after the call', async () => {
  const [a, b] = people;
  // Counts the offers a page makes, and notes what it sends, from its first script on.
  for (const p of [a, b]) {
    await p.ctx.addInitScript(() => {
      const w = window as any;
      w.__offersMade = 0;
      w.__sent = [];
      const make = RTCPeerConnection.prototype.createOffer;
      RTCPeerConnection.prototype.createOffer = function (this: RTCPeerConnection, ...args: any[]) {
        w.__offersMade += 1;
        return (make as any).apply(this, args);
      } as any;
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (this: WebSocket, data: any) {
        if (typeof data === 'string' && data.startsWith('{')) {
          const m = JSON.parse(data);
          w.__sent.push(m.type + (m.sdp ? '+sdp' : ''));
        }
        return send.call(this, data);
      };
    });
    await p.page.reload();
    await expectOnline(p.page);
  }
  const made = () => a.page.evaluate(() => (window as any).__offersMade as number);
  // What a page sent since last asked: its descriptions, and the messages that may carry one.
  const sent = (p: Person) =>
    p.page.evaluate(() =>
      (window as any).__sent.splice(0).filter((t: string) => /call_start|call_back|offer|answer/.test(t)),
    ) as Promise<string[]>;
  // The spare connection's offer, made about a second after joining.
  await expect.poll(made).toBe(1);
  for (const call of [1, 2]) {
    await sent(a);
    await sent(b);
    await connectCall(a, b);
    expect(await made(), 'no offer made at the tap: the spare one went out').toBe(call);
    // (Not inside the call_start: on a slow uplink its ~6 KB would hold up the ring.)
    expect(await sent(a), 'the offer right after the call_start, once').toEqual(['call_start', 'offer+sdp']);
    expect(await sent(b), 'the answer, made while it rang, rides in the accept').toEqual(['call_back+sdp']);
    await a.page.getByRole('button', { name: 'Hang up' }).click();
    await expect(status(b.page)).toHaveText(`${a.name} hung up`);
    await expect.poll(made, { message: 'a new spare after the call' }).toBe(call + 1);
  }
  // A call that rings in leaves the spare as it was: the next call placed still sends it.
  await connectCall(b, a);
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(b.page)).toHaveText(`${a.name} hung up`);
  await sent(a);
  await connectCall(a, b);
  expect(await sent(a)).toEqual(['call_start', 'offer+sdp']);
  expect(await made(), 'still the spare made before the call that rang in').toBe(3);
});

test('@smoke decline: the caller is told; the camera opened for dialing goes off at once', async () => {
  const [a, b] = people;
  await ring(a, b);
  // b's page rings (WebAudio, vibration), a hears ringback.
  await expect(b.page.locator('html')).toHaveAttribute('data-tone', 'ring');
  await expect(a.page.locator('html')).toHaveAttribute('data-tone', 'ringback');
  // Both see themselves while it rings (camera warmed for a quick start), full screen: the
  // fake-UI flag counts as a permission given (the camera-refused test covers the other case).
  // No microphone is live before the call connects.
  for (const p of [a, b]) {
    await expect(p.page.locator('.stage.preview #local-video')).toBeVisible();
    expect(await localKinds(p.page)).toEqual(['video']);
    expect(await keepLocalTracks(p.page)).toBe(1);
  }
  await b.page.getByRole('button', { name: 'Decline' }).click();
  await expect(status(a.page)).toHaveText(`${b.name} declined the call`);
  await expect(status(b.page)).toHaveText(`You declined ${a.name}'s call`);
  await expect(b.page.getByRole('alertdialog')).toHaveCount(0);
  for (const p of [a, b]) await expect(p.page.locator('html')).not.toHaveAttribute('data-tone', /.*/);
  for (const p of [a, b]) {
    await expect.poll(() => liveLocalTracks(p.page), { message: `${p.name}'s camera stopped` }).toBe(0);
    expect(await videosCleared(p.page)).toBe(true);
    await expect(p.page.locator('.stage.preview')).toHaveCount(0);
  }
});

test('the callee sees itself behind the incoming sheet; a cancel turns it off, a warmed call connects', async () => {
  const [a, b] = people;
  await ring(a, b);
  await expect(b.page.locator('.stage.preview #local-video')).toBeVisible();
  expect(await keepLocalTracks(b.page)).toBe(1);
  await a.page.getByRole('button', { name: 'Cancel' }).click();
  await expect(status(b.page)).toHaveText(`Missed call from ${a.name}`);
  await expect.poll(() => liveLocalTracks(b.page), { message: "the callee's camera stopped" }).toBe(0);
  expect(await videosCleared(b.page)).toBe(true);
  // Answering a warmed call: the caller's offer came while it rang and the answer is made,
  // but held: the caller knows nothing of the callee's address until the accept.
  await ring(a, b);
  const negotiation = (page: Page) =>
    page.evaluate(async () => {
      const pc = (window as any).duetPeerConnection as RTCPeerConnection | undefined;
      if (!pc) return null;
      const stats = await pc.getStats();
      let remoteCandidates = 0;
      const transports = new Set<string>();
      stats.forEach((s) => {
        remoteCandidates += s.type === 'remote-candidate' ? 1 : 0;
        if (s.type === 'local-candidate') transports.add(s.transportId);
      });
      return {
        local: pc.localDescription?.type ?? null,
        remote: pc.remoteDescription?.type ?? null,
        ice: pc.iceConnectionState,
        remoteCandidates,
        bundle: pc.getConfiguration().bundlePolicy,
        transports: transports.size,
      };
    });
  await expect
    .poll(() => negotiation(b.page), { message: 'the callee answered the offer while it rang' })
    .toEqual({ local: 'answer', remote: 'offer', ice: 'new', remoteCandidates: 0, bundle: 'balanced', transports: 1 });
  // The caller gathers for one transport, not one per kind of media (max-bundle): a third of
  // the candidates to send and add.
  await expect
    .poll(() => negotiation(a.page))
    .toEqual({ local: 'offer', remote: null, ice: 'new', remoteCandidates: 0, bundle: 'max-bundle', transports: 1 });
  await b.page.getByRole('button', { name: 'Accept' }).click();
  await expectPlaying(a.page, '#remote-video');
  await expectPlaying(b.page, '#remote-video');
});

test('the caller cancels while it rings: the sheet disappears', async () => {
  const [a, b] = people;
  await ring(a, b);
  await a.page.getByRole('button', { name: 'Cancel' }).click();
  await expect(b.page.getByRole('alertdialog')).toHaveCount(0);
  await expect(status(b.page)).toHaveText(`Missed call from ${a.name}`);
  await expect(status(a.page)).toHaveText(`Call to ${b.name} cancelled`);
});

test('calling a name that is not online says so', async () => {
  const [a] = people;
  const ghost = uniqueName('nobody');
  await a.page.getByLabel("Friend's name").fill(ghost);
  await a.page.getByRole('button', { name: 'Call', exact: true }).click();
  await expect(status(a.page)).toHaveText(`${ghost} is not online`);
  await expect(a.page.getByRole('button', { name: 'Call', exact: true })).toBeVisible();
});

test('closing the tab mid-call ends the call for the peer', async () => {
  const [a, b] = people;
  await connectCall(a, b);
  await keepLocalTracks(b.page);
  await a.page.close();
  // The relay ends the call after its grace period, unless WebRTC notices the loss first.
  await expect(status(b.page)).toHaveText(
    new RegExp(`^(${a.name} lost the connection; call ended|Could not connect to ${a.name}; the call ended)$`),
  );
  await expect.poll(() => liveLocalTracks(b.page)).toBe(0);
});

test('reload keeps the name, the session and the remembered name', async () => {
  const [a, b] = people;
  await a.page.reload();
  await expectOnline(a.page);
  await expect(a.page.locator('header .me')).toHaveText(a.name);
  // Still reachable under the same name after the reload.
  await ring(b, a);
  await a.page.getByRole('button', { name: 'Decline' }).click();
  // The join page offers the remembered name.
  await a.page.goto('/');
  await expect(a.page.getByLabel('Your name')).toHaveValue(a.name);
});

test('a name in use cannot be taken over by someone else', async ({ browser }) => {
  const [a, b] = people;
  const thief = await newPerson(browser, a.name);
  people.push(thief);
  await thief.page.goto(`/u/${a.name}`);
  await expect(thief.page.getByRole('alert')).toContainText('in use in another browser');
  await expect(thief.page.locator('header .link')).toHaveClass(/link-refused/);
  // The owner still gets calls.
  await ring(b, a);
});

test('busy: a third caller is told, the ringing call is undisturbed', async ({ browser }) => {
  const [a, b] = people;
  const c = await newPerson(browser, uniqueName('carol'));
  people.push(c);
  await goOnline(c);
  await ring(a, b);
  await c.page.getByLabel("Friend's name").fill(b.name);
  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await expect(status(c.page)).toHaveText(`${b.name} is busy in another call`);
  await expect(b.page.getByRole('alertdialog')).toContainText(a.name);
  await b.page.getByRole('button', { name: 'Accept' }).click();
  await expect(status(a.page)).toContainText(`In call with ${b.name}`);
});

test('an unanswered call rings out on both sides', async () => {
  const [a, b] = people;
  const ringSecs = Number(process.env.DUET_RING_TIMEOUT_SECS ?? 30);
  test.setTimeout((ringSecs + 30) * 1000);
  await ring(a, b);
  for (const p of [a, b]) await expect.poll(() => keepLocalTracks(p.page)).toBe(1);
  const timeout = (ringSecs + 5) * 1000;
  await expect(status(a.page)).toHaveText(`${b.name} did not answer`, { timeout });
  await expect(b.page.getByRole('alertdialog')).toHaveCount(0, { timeout });
  await expect(status(b.page)).toHaveText(`Missed call from ${a.name}`);
  // The cameras warmed while it rang are off again.
  for (const p of [a, b]) await expect.poll(() => liveLocalTracks(p.page)).toBe(0);
});

test('glare: both call each other at once and exactly one call results', async () => {
  const [a, b] = people;
  // The dialer hides once a call comes in, so a click can lose the race: that is fine.
  const dial = (p: Person, other: Person) =>
    p.page.getByRole('button', { name: `Call ${other.name}` }).click({ timeout: 3000 }).catch(() => {});
  await Promise.all([dial(a, b), dial(b, a)]);
  // Truly simultaneous: the clients settle it themselves (the name sorting first stays caller).
  // Otherwise one call arrived first and that side simply rings: it answers.
  await expect
    .poll(async () => {
      for (const p of [a, b]) {
        if (await p.page.getByRole('alertdialog').isVisible()) {
          await p.page.getByRole('button', { name: 'Accept' }).click();
        }
      }
      const texts = await Promise.all([status(a.page).textContent(), status(b.page).textContent()]);
      return texts;
    }, { timeout: 30_000 })
    .toEqual([expect.stringContaining(`In call with ${b.name}`), expect.stringContaining(`In call with ${a.name}`)]);
  for (const p of [a, b]) await expect(p.page.getByRole('alertdialog')).toHaveCount(0);
});

test('a signaling blip during a call keeps the call and its media', async () => {
  const [a, b] = people;
  const signaling = await routeSignaling(a.page);
  await a.page.reload();
  await expectOnline(a.page);
  await connectCall(a, b);

  await signaling.cut();
  await expect(a.page.locator('header .link')).toHaveClass(/link-(reconnecting|online)/);
  await expect.poll(signaling.opened, { message: 'the client reconnected by itself' }).toBe(2);
  await expectOnline(a.page);
  // The peer-to-peer call never noticed: still in call, frames still advancing on both sides.
  await expect(status(a.page)).toContainText(`In call with ${b.name}`);
  await expect(status(b.page)).toContainText(`In call with ${a.name}`);
  await expectPlaying(a.page, '#remote-video');
  await expectPlaying(b.page, '#remote-video');
  // Signaling works over the new socket: a hang-up reaches b.
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(b.page)).toHaveText(`${a.name} hung up`);
});


/** Frames the remote video has presented so far. */
async function remoteFrames(page: import('@playwright/test').Page): Promise<number> {
  return page.evaluate(
    () => (document.getElementById('remote-video') as HTMLVideoElement).getVideoPlaybackQuality().totalVideoFrames,
  );
}

for (const layout of ['desktop', 'Pixel 7'] as const) {
  test(`${layout === 'desktop' ? '@smoke ' : ''}in-call controls (${layout}): mute, camera off and on, switch camera; the peer sees it`, async ({ browser }) => {
    let [a, b] = people;
    if (layout !== 'desktop') {
      // The one who taps the controls is on a phone.
      const ctx = await browser.newContext({ ...devices[layout] });
      const page = await ctx.newPage();
      a = { name: uniqueName('phone'), ctx, page, errors: watchErrors(page) };
      people.push(a);
      await goOnline(a);
    }
    await inCallControls(a, b);
  });
}

test('muted before the connection is up: the microphone joins silenced', async () => {
  const [a, b] = people;
  // Both hold the other's ICE candidates, so the accepted call stays unconnected until released.
  for (const p of [a, b]) {
    await p.page.evaluate(() => {
      const w = window as any;
      const add = RTCPeerConnection.prototype.addIceCandidate;
      w.__held = new Promise((release) => (w.__release = release));
      RTCPeerConnection.prototype.addIceCandidate = function (this: RTCPeerConnection, ...args: any[]) {
        return w.__held.then(() => add.apply(this, args as any));
      } as any;
    });
  }
  await ring(a, b);
  await b.page.getByRole('button', { name: 'Accept' }).click();
  await b.page.getByRole('button', { name: 'Mute microphone' }).click();
  await expect(b.page.getByRole('button', { name: 'Unmute microphone' })).toHaveAttribute('aria-pressed', 'true');
  // Not connected yet: no microphone is open.
  await expect(status(b.page)).not.toContainText('In call');
  expect(await localKinds(b.page)).toEqual(['video']);
  for (const p of [a, b]) await p.page.evaluate(() => (window as any).__release());
  await expect(status(b.page)).toContainText(`In call with ${a.name}`);
  await expect.poll(() => localKinds(b.page)).toEqual(['audio', 'video']);
  const micEnabled = () =>
    b.page.evaluate(() =>
      ((document.getElementById('local-video') as HTMLVideoElement).srcObject as MediaStream).getAudioTracks()[0].enabled,
    );
  expect(await micEnabled()).toBe(false);
  await expect(a.page.getByText(`${b.name} is muted`)).toBeVisible();
  await b.page.getByRole('button', { name: 'Unmute microphone' }).click();
  expect(await micEnabled()).toBe(true);
  await expect.poll(() => audioEnergyOver(a.page, 1500), { message: 'b is heard once unmuted' }).toBeGreaterThan(0);
});

test('a microphone that fails to open leaves the call up, muted; unmuting tries again', async () => {
  const [a, b] = people;
  // b's browser refuses the microphone once (another app holding it, say).
  await b.page.evaluate(() => {
    const ask = MediaDevices.prototype.getUserMedia;
    let refused = false;
    MediaDevices.prototype.getUserMedia = function (this: MediaDevices, c?: MediaStreamConstraints) {
      if (c?.audio && !c.video && !refused) {
        refused = true;
        return Promise.reject(new DOMException('Could not start audio source', 'NotReadableError'));
      }
      return ask.call(this, c);
    };
  });
  await connectCall(a, b);
  await expect(b.page.getByText('The microphone could not be turned on (NotReadableError: Could not start audio source); you are muted.')).toBeVisible();
  await expect(b.page.getByRole('button', { name: 'Unmute microphone' })).toHaveAttribute('aria-pressed', 'true');
  await expect(a.page.getByText(`${b.name} is muted`)).toBeVisible();
  expect(await localKinds(b.page)).toEqual(['video']);
  await b.page.getByRole('button', { name: 'Unmute microphone' }).click();
  await expect.poll(() => localKinds(b.page)).toEqual(['audio', 'video']);
  await expect(a.page.getByText(`${b.name} is muted`)).toHaveCount(0);
  await expect.poll(() => audioEnergyOver(a.page, 1500), { message: 'b is heard after the retry' }).toBeGreaterThan(0);
});

async function inCallControls(a: Person, b: Person) {
  await connectCall(a, b);
  const mute = a.page.getByRole('button', { name: 'Mute microphone' });
  await expect.poll(() => audioEnergyOver(b.page, 1500), { message: 'a is heard' }).toBeGreaterThan(0);

  await mute.click();
  await expect(a.page.getByRole('button', { name: 'Unmute microphone' })).toHaveAttribute('aria-pressed', 'true');
  await expect(b.page.getByText(`${a.name} is muted`)).toBeVisible();
  // Layout evidence, kept in end2end/test-results/.
  await a.page.screenshot({ path: test.info().outputPath('caller-muted.png') });
  await b.page.screenshot({ path: test.info().outputPath('callee-sees-muted.png') });
  // Windows longer than the fake microphone's beep interval, so silence is not a lucky gap.
  await expect.poll(() => audioEnergyOver(b.page, 1500), { message: 'silence once muted' }).toBeLessThan(1e-6);
  await a.page.getByRole('button', { name: 'Unmute microphone' }).click();
  await expect(b.page.getByText(`${a.name} is muted`)).toHaveCount(0);
  await expect.poll(() => audioEnergyOver(b.page, 1500), { message: 'heard again' }).toBeGreaterThan(0);

  // Camera off: the light goes off (track stopped) and b's picture stops advancing.
  await a.page.getByRole('button', { name: 'Turn camera off' }).click();
  await expect(b.page.getByText(`${a.name}'s camera is off`)).toBeVisible();
  await expect
    .poll(() => a.page.evaluate(() => (document.getElementById('local-video') as HTMLVideoElement).srcObject
      && ((document.getElementById('local-video') as HTMLVideoElement).srcObject as MediaStream).getVideoTracks().length))
    .toBe(0);
  await expect
    .poll(async () => {
      const n = await remoteFrames(b.page);
      await b.page.waitForTimeout(700); // a measurement window
      return (await remoteFrames(b.page)) - n;
    }, { message: "b's remote video is frozen" })
    .toBe(0);

  await a.page.getByRole('button', { name: 'Turn camera on' }).click();
  await expect(b.page.getByText(`${a.name}'s camera is off`)).toHaveCount(0);
  await expectPlaying(b.page, '#remote-video');

  // Switching cameras replaces the track without renegotiating: the call stays up and plays.
  await a.page.getByRole('button', { name: 'Switch camera' }).click();
  await expectPlaying(b.page, '#remote-video');
  await expect(status(a.page)).toContainText(`In call with ${b.name}`);
  await expect(status(b.page)).toContainText(`In call with ${a.name}`);
  await expect.poll(() => a.page.evaluate(() =>
    ((document.getElementById('local-video') as HTMLVideoElement).srcObject as MediaStream)
      .getTracks().filter((t) => t.readyState === 'live').length)).toBe(2);

  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(status(b.page)).toHaveText(`${a.name} hung up`);
}

/** The on-screen box of `selector` on `page`. */
async function box(page: import('@playwright/test').Page, selector: string) {
  const b = await page.locator(selector).boundingBox();
  expect(b, `${selector} is laid out`).not.toBeNull();
  return b!;
}

test('the call view: tap to swap, drag the picture-in-picture to a corner, screen kept on, full screen', async () => {
  const [a, b] = people;
  await connectCall(a, b);
  const page = a.page;
  const small = async (sel: string, other: string) => {
    const [s, o] = [await box(page, sel), await box(page, other)];
    return s.width * s.height < (o.width * o.height) / 4;
  };
  expect(await small('#local-video', '#remote-video')).toBe(true);
  // The small picture is covered by a real button (no ARIA role on a <video>).
  const handle = page.getByRole('button', { name: /^Swap videos/ });
  const [h, l] = [await box(page, '.pip-handle'), await box(page, '#local-video')];
  expect([h.x, h.y, h.width, h.height]).toEqual([l.x, l.y, l.width, l.height]);

  // Tap the small picture: the two swap; tap the (now small) remote: back.
  await handle.click();
  await expect.poll(() => small('#remote-video', '#local-video')).toBe(true);
  await handle.click({ position: { x: 20, y: 20 } });
  await expect.poll(() => small('#local-video', '#remote-video')).toBe(true);

  // Drag it towards the bottom left: it snaps into that corner, and the drag is not a tap.
  const viewport = page.viewportSize()!;
  const start = await box(page, '#local-video');
  await page.mouse.move(start.x + start.width / 2, start.y + start.height / 2);
  await page.mouse.down();
  await page.mouse.move(viewport.width * 0.2, viewport.height * 0.6, { steps: 8 });
  await page.mouse.up();
  await expect(page.locator('section.stage')).toHaveClass(/pip-bl/);
  const moved = await box(page, '#local-video');
  expect(moved.x).toBeLessThan(viewport.width / 2);
  expect(moved.y).toBeGreaterThan(viewport.height / 2 - moved.height);
  expect(await small('#local-video', '#remote-video')).toBe(true);

  // After a swap the small one is the remote video, and it drags just the same.
  await handle.click();
  await expect.poll(() => small('#remote-video', '#local-video')).toBe(true);
  const r = await box(page, '#remote-video');
  await page.mouse.move(r.x + r.width / 2, r.y + r.height / 2);
  await page.mouse.down();
  await page.mouse.move(viewport.width * 0.8, viewport.height * 0.2, { steps: 8 });
  await page.mouse.up();
  await expect(page.locator('section.stage')).toHaveClass(/pip-tr/);
  expect(await small('#remote-video', '#local-video'), 'a drag is not a tap').toBe(true);

  // By keyboard: Enter or Space on the handle swaps (focus stays on it), arrow keys move the
  // small one between corners.
  await handle.focus();
  await page.keyboard.press('Enter');
  await expect.poll(() => small('#local-video', '#remote-video')).toBe(true);
  await page.keyboard.press('Space');
  await expect.poll(() => small('#remote-video', '#local-video')).toBe(true);
  await page.keyboard.press('Space');
  await expect.poll(() => small('#local-video', '#remote-video')).toBe(true);
  await expect(handle).toBeFocused();
  await page.keyboard.press('ArrowLeft');
  await expect(page.locator('section.stage')).toHaveClass(/pip-tl/);
  await page.keyboard.press('ArrowDown');
  await expect(page.locator('section.stage')).toHaveClass(/pip-bl/);

  // The screen stays on during the call.
  await expect(page.locator('html')).toHaveAttribute('data-wake-lock', 'held');

  await page.getByRole('button', { name: 'Full screen' }).click();
  await expect.poll(() => page.evaluate(() => document.fullscreenElement !== null)).toBe(true);
  await page.getByRole('button', { name: 'Full screen' }).click();
  await expect.poll(() => page.evaluate(() => document.fullscreenElement === null)).toBe(true);

  // Hang up while swapped: the next call starts the usual way round, in the corner chosen.
  await handle.click();
  await expect.poll(() => small('#remote-video', '#local-video')).toBe(true);
  await page.getByRole('button', { name: 'Hang up' }).click();
  await expect(page.locator('html')).not.toHaveAttribute('data-wake-lock', /.*/);
  await connectCall(a, b);
  expect(await small('#local-video', '#remote-video')).toBe(true);
  await expect(page.locator('section.stage')).toHaveClass(/pip-bl/);
});

test('@smoke connection quality: bars during the call, figures from getStats on tap', async () => {
  const [a, b] = people;
  await connectCall(a, b);
  const bars = a.page.locator('header button.quality');
  // One reading a second, figures from the difference of two: bars within a few seconds.
  await expect(bars).toHaveAttribute('data-bars', /^[1-4]$/);
  // Loopback: no loss, a round trip of a millisecond or so.
  await expect(bars).toHaveAttribute('aria-label', 'Connection quality: excellent');
  await expect(bars).toHaveAttribute('aria-expanded', 'false');
  await bars.click();
  await expect(bars).toHaveAttribute('aria-expanded', 'true');
  const details = a.page.getByRole('dialog', { name: /Connection quality/ });
  await expect(details).toBeVisible();
  const value = (label: string) => details.locator('dt', { hasText: label }).locator('xpath=following-sibling::dd[1]');
  await expect(value('Round trip')).toHaveText(/^(\d+|< 1) ms$/);
  await expect(value('Packet loss')).toHaveText(/^\d+\.\d %$/);
  await expect(value('Incoming bitrate')).toHaveText(/^\d+ kbit\/s$/);
  await expect(value('Incoming video')).toHaveText(/^\d+×\d+( · \d+ fps)?$/);
  // The figures are live: the bitrate is that of a playing video, not zero.
  await expect.poll(async () => parseInt((await value('Incoming bitrate').textContent()) ?? '0')).toBeGreaterThan(50);
  // Keyboard: focus is in the dialog; Escape closes it and focus returns to the bars.
  await expect(details.getByRole('button', { name: 'Close' })).toBeFocused();
  await a.page.keyboard.press('Escape');
  await expect(details).toHaveCount(0);
  await expect(bars).toBeFocused();
  // The figures never hide what the peer's flags say (both sit at the top left).
  await b.page.getByRole('button', { name: 'Mute microphone' }).click();
  const flags = a.page.locator('.peer-flags');
  await expect(flags).toContainText(b.name);
  await bars.click();
  const [f, d] = [await flags.boundingBox(), await details.boundingBox()];
  expect(f && d && (f.y + f.height <= d.y || d.y + d.height <= f.y), `${JSON.stringify(f)} ${JSON.stringify(d)}`).toBe(true);
  await details.getByRole('button', { name: 'Close' }).click();
  await expect(details).toHaveCount(0);
  await a.page.getByRole('button', { name: 'Hang up' }).click();
  await expect(bars).toHaveCount(0);
});

test('an incoming call in a background page shows a system notification, then a missed-call one', async () => {
  const [a, b] = people;
  // Never asked yet: the call screen offers notifications (the prompt comes only from a tap).
  await expect(b.page.getByRole('button', { name: /Notify me of incoming calls/ })).toBeVisible();
  await b.ctx.grantPermissions(['notifications']);
  // Chromium loses a notification from getNotifications() for good if the list is read while
  // showNotification is under way (the app queues its own calls): the test's reads take turns
  // with the page's calls too.
  await b.ctx.addInitScript(() => {
    const proto = ServiceWorkerRegistration.prototype as any;
    let last: Promise<unknown> = Promise.resolve();
    for (const name of ['showNotification', 'getNotifications']) {
      const call = proto[name];
      proto[name] = function (...args: unknown[]) {
        const run = last.then(() => call.apply(this, args));
        last = run.catch(() => {});
        return run;
      };
    }
  });
  await b.page.reload();
  await expectOnline(b.page);
  await expect(b.page.getByRole('button', { name: /Notify me of incoming calls/ })).toHaveCount(0);
  // Notifications go through the service worker (the only way on Android).
  await b.page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  // What the system shows: our notifications, title and body.
  const shown = () =>
    b.page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.getNotifications())
        .filter((n) => n.tag.startsWith('duet-call'))
        .map((n) => `${n.title} | ${n.body}`);
    });
  // The relay rings out after 6 s in this suite: poll briskly so each call is done well before.
  const expectShown = (list: string[]) => expect.poll(shown, { intervals: [100] }).toEqual(list);
  // Headless pages are always "visible": make b's page report what a background tab reports.
  const setHidden = (hidden: boolean) =>
    b.page.evaluate((hidden) => {
      const state = hidden ? 'hidden' : 'visible';
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
      document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
    }, hidden);
  const incoming = `Incoming video call | ${a.name} is calling you`;

  // A call arrives while the page is in the background; looked at, the notification goes.
  await setHidden(true);
  await ring(a, b);
  await expectShown([incoming]);
  await setHidden(false);
  await expectShown([]);
  await a.page.getByRole('button', { name: 'Cancel' }).click();
  await expect(status(b.page)).toHaveText(`Missed call from ${a.name}`);

  // A call arrives in view and the page is hidden while it rings: notified then. The caller
  // gives up: it becomes a missed-call notification, which goes once the page is looked at.
  await ring(a, b);
  await setHidden(true);
  await expectShown([incoming]);
  await a.page.getByRole('button', { name: 'Cancel' }).click();
  await expect(status(b.page)).toHaveText(`Missed call from ${a.name}`);
  await expectShown([`Missed call | Missed call from ${a.name}`]);
  await setHidden(false);
  await expectShown([]);
});
