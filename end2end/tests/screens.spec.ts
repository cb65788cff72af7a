import { test, expect, devices, Page, TestInfo } from '@playwright/test';
import * as path from 'path';
import { Person, axeViolations, connectCall, expectOnline, ring, status, uniqueName, watchErrors } from './helpers';

// Every screen on a phone (Pixel 7 emulation: 412×839, touch, mobile) and on a desktop: each is
// checked to fit (no sideways scrolling, controls on screen, named, big enough to tap), checked by
// axe-core (WCAG 2.2 A/AA) in both languages and both colour schemes, and photographed into
// test-results/screens/ (kept as test artifacts).

const layouts = [
  { id: 'pixel7', options: devices['Pixel 7'], phone: true },
  { id: 'desktop', options: { viewport: { width: 1280, height: 800 } }, phone: false },
];

/** Checks the layout of what is on screen now and stores a screenshot named `screen`. */
async function screen(page: Page, info: TestInfo, layout: string, screen: string, phone: boolean) {
  const problems = await page.evaluate((phone) => {
    const found: string[] = [];
    const width = window.innerWidth;
    if (document.documentElement.scrollWidth > width + 1) {
      found.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
    }
    const controls = document.querySelectorAll<HTMLElement>('button, a.btn, a.lang-toggle, input, [role=button]');
    for (const el of controls) {
      const r = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      if (r.width === 0 || style.visibility === 'hidden' || el.closest('[hidden]')) continue;
      const what = el.getAttribute('aria-label') || el.textContent?.trim() || el.id || el.tagName;
      if (r.left < -1 || r.right > width + 1) found.push(`off screen: ${what} (${r.left}..${r.right})`);
      const labelled =
        el.getAttribute('aria-label') ||
        el.textContent?.trim() ||
        (el as HTMLInputElement).labels?.length ||
        el.getAttribute('title');
      if (!labelled) found.push(`no accessible name: ${el.outerHTML.slice(0, 80)}`);
      // Tap targets: 44 px is Apple's and Google's minimum for a finger.
      if (phone && el.tagName !== 'VIDEO' && Math.min(r.width, r.height) < 44 && !el.matches('input')) {
        found.push(`too small to tap: ${what} ${Math.round(r.width)}×${Math.round(r.height)}`);
      }
    }
    return found;
  }, phone);
  const file = path.join(info.project.outputDir, 'screens', `${layout}-${screen}.png`);
  await page.screenshot({ path: file, animations: 'disabled' });
  await info.attach(`${layout}-${screen}`, { path: file, contentType: 'image/png' });
  expect(problems, `${layout} ${screen}`).toEqual([]);
  expect.soft(await axeInBothLanguages(page), `axe-core on ${layout} ${screen}`).toEqual([]);
}

/** axe-core's findings in the page's language, then in the other one (switched in place and back). */
async function axeInBothLanguages(page: Page): Promise<string[]> {
  const html = page.locator('html');
  const lang = (await html.getAttribute('lang'))!;
  const found = (await axeViolations(page)).map((v) => `${lang} ${v}`);
  const toggle = page.locator('a.lang-toggle');
  if ((await toggle.count()) === 0) return found;
  // A script click: on the incoming screen the sheet covers the toggle for the pointer.
  await toggle.evaluate((a: HTMLElement) => a.click());
  await expect(html).not.toHaveAttribute('lang', lang);
  const other = (await html.getAttribute('lang'))!;
  found.push(...(await axeViolations(page)).map((v) => `${other} ${v}`));
  await toggle.evaluate((a: HTMLElement) => a.click());
  await expect(html).toHaveAttribute('lang', lang);
  return found;
}

for (const { id, options, phone } of layouts) {
  test(`screens (${id}): join, idle, calling, incoming, in call, details, 中文, ended`, async ({ browser }, info) => {
    test.setTimeout(120_000);
    const ctx = await browser.newContext({ ...options, locale: 'en-US' });
    const page = await ctx.newPage();
    const errors = watchErrors(page);
    const me: Person = { name: uniqueName('ann'), ctx, page, errors };
    // The other side: a desktop browser.
    const otherCtx = await browser.newContext();
    const other: Person = { name: uniqueName('ben'), ctx: otherCtx, page: await otherCtx.newPage(), errors: [] };
    other.errors = watchErrors(other.page);

    await page.goto('/');
    await expect(page.getByLabel('Your name')).toBeVisible();
    await screen(page, info, id, '1-join', phone);

    await page.getByLabel('Your name').fill(me.name);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectOnline(page);
    await other.page.goto(`/u/${other.name}`);
    await expectOnline(other.page);
    await expect(page.getByRole('button', { name: `Call ${other.name}` })).toBeVisible();
    await screen(page, info, id, '2-idle', phone);

    await ring(me, other);
    // Own camera full screen while it rings.
    await expect(page.locator('.stage.preview')).toBeVisible();
    await expect.poll(() => page.locator('#local-video').evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(0);
    await screen(page, info, id, '3-calling', phone);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect(status(page)).toHaveText(`Call to ${other.name} cancelled`);

    await ring(other, me);
    await expect(page.getByRole('alertdialog')).toBeVisible();
    await expect.poll(() => page.locator('#local-video').evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(0);
    // The sheet takes the focus, so screen readers announce it by its name; Tab reaches its
    // buttons (focus is not put on Accept: a key meant for something else must not answer).
    await expect(page.getByRole('alertdialog')).toBeFocused();
    await expect(page.getByRole('alertdialog')).toHaveAccessibleName(`Incoming video call ${other.name}`);
    // The ringing pulse (the avatar's ring, a pseudo-element) stops for people who asked for less
    // motion.
    const pulse = () => page.locator('.sheet .avatar').evaluate((el) => getComputedStyle(el, '::after').animationName);
    expect(await pulse()).toBe('pulse');
    await page.emulateMedia({ reducedMotion: 'reduce' });
    expect(await pulse()).toBe('none');
    await page.emulateMedia({ reducedMotion: null });
    await page.keyboard.press('Tab');
    await expect(page.getByRole('button', { name: 'Decline' })).toBeFocused();
    await screen(page, info, id, '4-incoming', phone);
    await page.getByRole('button', { name: 'Decline' }).click();

    await connectCall(me, other);
    await expect(page.locator('header button.quality')).toHaveAttribute('data-bars', /^[1-4]$/);
    await screen(page, info, id, '5-in-call', phone);
    // The timer ticks outside the live region: screen readers hear the status once, not every second.
    await expect(page.locator('p.status [role=status]')).toHaveText(`In call with ${other.name}`);
    await expect(status(page)).toHaveText(new RegExp(`^In call with ${other.name} · \\d\\d:\\d\\d$`));
    // The own video is the small one, the remote one fills the screen.
    const [local, remote] = [await page.locator('#local-video').boundingBox(), await page.locator('#remote-video').boundingBox()];
    expect(local!.width * local!.height).toBeLessThan((remote!.width * remote!.height) / 4);
    const viewport = page.viewportSize()!;
    expect(remote!.width).toBeGreaterThanOrEqual(viewport.width - 1);

    // Keyboard: Tab reaches the controls, Space toggles, focus is visible.
    let focused = '';
    for (let i = 0; i < 30 && focused !== 'Mute microphone'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
    }
    expect(focused).toBe('Mute microphone');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline, 'keyboard focus is visible').not.toBe('none');
    await page.keyboard.press('Space');
    await expect(page.getByRole('button', { name: 'Unmute microphone' })).toHaveAttribute('aria-pressed', 'true');
    await page.keyboard.press('Space');
    await expect(page.getByRole('button', { name: 'Mute microphone' })).toHaveAttribute('aria-pressed', 'false');

    await page.locator('header button.quality').click();
    await expect(page.getByRole('dialog', { name: /Connection quality/ })).toBeVisible();
    await screen(page, info, id, '6-details', phone);
    await page.getByRole('button', { name: 'Close' }).click();

    // The chat: a sheet over the video on a phone, a side panel beside it on a desktop; a
    // message each way and a photo offered.
    await page.locator('#chat-button').click();
    await expect(page.locator('#chat-panel')).toBeVisible();
    await page.locator('#chat-input').fill('Hi! The photos are here: https://example.com/album');
    await page.locator('#chat-input').press('Enter');
    await other.page.locator('#chat-button').click();
    await other.page.locator('#chat-input').fill('你好 👋 收到了');
    await other.page.locator('#chat-input').press('Enter');
    const dot = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
    await other.page
      .locator('#chat-panel input[type=file]')
      .setInputFiles({ name: 'beach.png', mimeType: 'image/png', buffer: Buffer.from(dot, 'base64') });
    await expect(page.locator('li.file.theirs')).toContainText('beach.png');
    await screen(page, info, id, '7a-chat', phone);
    await page.locator('a.lang-toggle').evaluate((a: HTMLElement) => a.click());
    await expect(page.locator('#chat-panel h2')).toHaveText('聊天');
    await expect(page.locator('li.file.theirs')).toContainText('接收');
    await screen(page, info, id, '7b-chat-zh', phone);
    await page.locator('a.lang-toggle').evaluate((a: HTMLElement) => a.click());
    await page.locator('li.file.theirs').getByRole('button', { name: 'Receive' }).click();
    await expect(page.locator('li.file.theirs img.preview')).toBeVisible();
    await page.keyboard.press('Escape');
    await expect(page.locator('#chat-panel')).toHaveCount(0);

    // Switching the language mid-call changes the words, not the call.
    await page.locator('a.lang-toggle').click();
    await expect(status(page)).toContainText(`与 ${other.name} 通话中`);
    await expect(page.getByRole('button', { name: '挂断' })).toBeVisible();
    await expect(page.getByRole('button', { name: '关闭麦克风' })).toBeVisible();
    await expect(status(other.page)).toContainText(`In call with ${me.name}`);
    await screen(page, info, id, '7-in-call-zh', phone);
    await page.locator('a.lang-toggle').click();
    await expect(status(page)).toContainText(`In call with ${other.name}`);

    await other.page.getByRole('button', { name: 'Hang up' }).click();
    await expect(status(page)).toHaveText(`${other.name} hung up`);
    await screen(page, info, id, '8-ended', phone);

    expect(errors).toEqual([]);
    expect(other.errors).toEqual([]);
    await ctx.close();
    await otherCtx.close();
  });
}

test('colours follow the system: light and dark', async ({ browser }, info) => {
  for (const [scheme, background] of [
    ['light', 'rgb(248, 250, 252)'],
    ['dark', 'rgb(15, 23, 42)'],
  ] as const) {
    const ctx = await browser.newContext({ ...devices['Pixel 7'], colorScheme: scheme });
    const page = await ctx.newPage();
    await page.goto(`/u/${uniqueName('dusk')}`);
    await expectOnline(page);
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe(background);
    await screen(page, info, 'pixel7', `idle-${scheme}`, true);
    await ctx.close();
  }
});
