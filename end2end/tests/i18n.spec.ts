import { test, expect } from '@playwright/test';
import { watchErrors } from './helpers';

// The UI speaks English and Simplified Chinese: the browser's Accept-Language picks, the toggle
// switches in place (no reload) and is remembered in a cookie the server reads.

test('language: Accept-Language picks 中文, the toggle switches and is remembered', async ({ browser, baseURL }) => {
  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const page = await ctx.newPage();
  const errors = watchErrors(page);

  await page.goto('/');
  await expect(page.locator('html')).toHaveAttribute('lang', 'zh-CN');
  await expect(page.locator('.tagline')).toHaveText('私密的一对一视频通话，浏览器直连浏览器。');
  await expect(page.getByLabel('你的名字')).toBeVisible();
  // Hydrated in the same language: the form validates in Chinese.
  await page.getByLabel('你的名字').fill('a b');
  await page.getByRole('button', { name: '继续' }).click();
  await expect(page.locator('.error')).toHaveText('名字里不能有“ ”：请用字母、数字、“_”、“-” 或 “.”。');

  // The toggle names the other language in that language, and switches without a reload.
  const toggle = page.locator('a.lang-toggle');
  await expect(toggle).toHaveText('English');
  await page.evaluate(() => ((window as any).__sameDocument = true));
  await toggle.click();
  await expect(page.locator('.tagline')).toHaveText('Private one-to-one video calls, straight from browser to browser.');
  await expect(page.locator('.error')).toHaveText(/^“ ” is not allowed in a name/);
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await expect(toggle).toHaveText('中文');
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  const cookies = await ctx.cookies();
  expect(cookies.find((c) => c.name === 'duet_lang')?.value).toBe('en');

  // Remembered: the server renders English although the browser still asks for Chinese.
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await expect(page.getByLabel('Your name')).toBeVisible();
  expect(errors).toEqual([]);
  await ctx.close();

  // Without JavaScript the toggle is a link: the server sets the cookie and sends you back.
  const plain = await browser.newContext({ javaScriptEnabled: false, locale: 'en-US' });
  const p = await plain.newPage();
  await p.goto('/call/bob');
  await p.locator('a.lang-toggle').click();
  await expect(p).toHaveURL(`${baseURL}/call/bob`);
  await expect(p.locator('h1')).toHaveText('在 Duet 上呼叫 bob');
  expect((await plain.cookies()).find((c) => c.name === 'duet_lang')?.value).toBe('zh-CN');
  // Pages send no Referer: the link itself says where to go back.
  expect(await p.locator('a.lang-toggle').getAttribute('href')).toBe('/lang/en?back=%2Fcall%2Fbob');
  // It never redirects to another site.
  for (const back of ['//evil.example/x', 'https%3A%2F%2Fevil.example%2Fx', '%2F%5Cevil.example']) {
    const away = await p.request.get(`/lang/en?back=${back}`, {
      headers: { Referer: 'https://evil.example/x' },
      maxRedirects: 0,
    });
    expect(away.status()).toBe(303);
    expect(away.headers()['location']).toBe('/');
  }
  expect((await p.request.get('/lang/klingon', { maxRedirects: 0 })).status()).toBe(404);
  await plain.close();
});
