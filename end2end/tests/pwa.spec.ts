import { test, expect, chromium } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { axeViolations, expectOnline, uniqueName, watchErrors } from './helpers';

test('PWA: the manifest parses, the app is installable, and it starts offline', async ({}, info) => {
  // A persistent profile: Chromium never offers installation in an incognito-like context.
  const profile = mkdtempSync(join(tmpdir(), 'duet-pwa-'));
  const { launchOptions, baseURL } = info.project.use;
  const ctx = await chromium.launchPersistentContext(profile, { ...launchOptions, baseURL });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const errors = watchErrors(page);
  const me = uniqueName('pwa');
  await page.goto(`/u/${me}`);
  await expectOnline(page);
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => undefined));

  const cdp = await ctx.newCDPSession(page);
  const manifest = await cdp.send('Page.getAppManifest');
  expect(manifest.errors).toEqual([]);
  expect(manifest.url).toMatch(/\/manifest\.webmanifest$/);
  const parsed = JSON.parse(manifest.data);
  expect(parsed.short_name).toBe('Duet');
  expect(parsed.display).toBe('standalone');
  const icons = parsed.icons.map((i: { sizes: string; purpose: string }) => `${i.sizes} ${i.purpose}`);
  expect(icons).toEqual(['192x192 any', '512x512 any', '512x512 maskable']);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  expect(installabilityErrors).toEqual([]);

  // The worker takes control (clients.claim); a reload goes through it.
  await page.reload();
  await expectOnline(page);
  expect(await page.evaluate(() => navigator.serviceWorker.controller?.state)).toBe('activated');

  // Network cut: the visited page still opens from the cache, hydrates, and says it is offline.
  await ctx.setOffline(true);
  await page.reload();
  await expect(page.locator('header .me')).toHaveText(me);
  await expect(page.locator('.offline-banner')).toContainText('You are offline');
  expect(await axeViolations(page), 'offline, from the cache').toEqual([]);
  // A page never visited gets the offline page.
  await page.goto('/u/never_visited_before');
  await expect(page.getByRole('heading', { name: 'You are offline' })).toBeVisible();
  expect(await axeViolations(page), 'the offline page').toEqual([]);
  // In Chinese too (the page picks the remembered language itself).
  await ctx.addCookies([{ name: 'duet_lang', value: 'zh-CN', url: page.url() }]);
  await page.reload();
  await expect(page.getByRole('heading', { name: '你已离线' })).toBeVisible();
  expect(await axeViolations(page), 'the offline page in 中文').toEqual([]);
  // And at a phone's size.
  await page.setViewportSize({ width: 412, height: 839 });
  expect(await axeViolations(page), 'the offline page in 中文 on a phone').toEqual([]);

  // Back online: the banner goes and the app reconnects by itself.
  await page.goto(`/u/${me}`).catch(() => undefined);
  await ctx.setOffline(false);
  await page.reload();
  await expectOnline(page);
  await expect(page.locator('.offline-banner')).toHaveCount(0);
  // Offline, the failing WebSocket and fetches log errors; only failures while online count.
  expect(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|WebSocket|Failed to fetch|net::/.test(e))).toEqual([]);
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
});
