// The classic design's clients still work with Duet: a Duet page and the classic page
// (end2end/perf/classic.html: inline JS, confirm() to answer, no `early=1`) call each other both
// ways and see each other. For a Duet caller the relay holds its offer until the classic page
// has answered confirm(); a Duet callee answers the classic caller's late offer.
import { test, expect } from '@playwright/test';
import { newPerson, goOnline, expectPlaying, status, startClassic, uniqueName, type ClassicServer, type Person } from './helpers';

let classic: ClassicServer;
test.beforeAll(async ({ baseURL }) => {
  classic = await startClassic(new URL(baseURL!));
});
test.afterAll(() => classic?.close());

let duet: Person;
let old: Person;
test.beforeEach(async ({ browser }) => {
  duet = await newPerson(browser, uniqueName('duet'));
  old = await newPerson(browser, uniqueName('classic'));
  await goOnline(duet);
  // confirm() "is calling. Answer?": yes.
  old.page.on('dialog', (d) => void d.accept());
  await old.page.goto(`${classic.url}/classic?name=${encodeURIComponent(old.name)}`);
  await expect(old.page.locator('html[data-ready]')).toHaveCount(1);
});
test.afterEach(async () => {
  // Only Duet's page: the classic page adds candidates before its remote description is set
  // (it opens the camera first), an error of its own design that it survives.
  expect(duet.errors).toEqual([]);
  await duet.ctx.close();
  await old.ctx.close();
});

test('a Duet page calls a classic page: both see each other, the hang-up reaches it', async () => {
  await duet.page.getByRole('button', { name: `Call ${old.name}` }).click();
  await expectPlaying(duet.page, '#remote-video');
  await expectPlaying(old.page, '#remote');
  // The classic page's side of the data channels opens too, but nothing there reads them: no
  // "hello", so no chat (the in-call controls are there, the chat button is not).
  await expect(duet.page.getByRole('button', { name: 'Mute microphone' })).toBeVisible();
  await expect.poll(() => duet.page.evaluate(() => (window as any).duetChannels?.chat?.readyState)).toBe('open');
  await expect(duet.page.locator('#chat-button')).toHaveCount(0);
  await duet.page.getByRole('button', { name: 'Hang up' }).click();
  await expect.poll(() => old.page.evaluate(() => (document.getElementById('remote') as HTMLVideoElement).srcObject)).toBeNull();
});

test('a classic page calls a Duet page: it rings, is answered, both see each other', async () => {
  await old.page.getByRole('button', { name: duet.name }).click();
  await expect(duet.page.getByRole('alertdialog')).toContainText(old.name);
  await duet.page.getByRole('button', { name: 'Accept' }).click();
  await expectPlaying(duet.page, '#remote-video');
  await expectPlaying(old.page, '#remote');
  await old.page.locator('#hangup').click();
  await expect(status(duet.page)).toContainText(old.name);
  await expect(duet.page.getByRole('button', { name: 'Hang up' })).toHaveCount(0);
});
