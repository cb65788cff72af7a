// Call setup answered at once, interleaved: Duet builds, the same order in a plain page
// (order.html) and the classic page (classic.html), in one Chromium, taking turns call by call
// so that the machine's swings hit all alike. Not part of the suite (docs/perf.md, "sixth
// session"). Run from end2end/ against running Duet servers:
//   DUET=http://127.0.0.1:3100,http://127.0.0.1:3101+noui N=14 node perf/ab.mjs
// FPS=30 gives the fake camera that frame rate (Chromium's default is 20, a phone's camera 30).
// `+noui` hides Duet's bars, panel and sheet (CSS, CSP bypassed): what its UI costs; `+css`
// adds the CSS in $CSS the same way (to try a style change without a build); `+js:FILE` runs
// FILE as an init script in both pages (to try a change of the pages' order without a build).
// Suffixes combine: `http://127.0.0.1:3100+css+js:/tmp/a.js`.
// Prints per variant: medians of click -> first remote frame (caller, callee) and of
// click -> connected, their ratio to the classic page's, from the sending peer's `connected` to
// each frame, and the browser's CPU per call. CAPS=1 also prints every call with the times the
// shared fake camera's frames reached the pages (perf/captures.js), all from the click.
import { chromium } from '@playwright/test';
import fs from 'node:fs';
import references from './reference.js';

const { startReference } = references;

const DUET = (process.env.DUET || 'http://127.0.0.1:3100').split(',');
const N = Number(process.env.N || 14);
const relay = new URL(DUET[0].split('+')[0]);
// The reference pages, their WebSockets passed through to the first Duet server's relay.
const reference = await startReference(relay);
const here = reference.url;

/** CPU ms used so far by each Chromium process, keyed "pid type". */
function cpu() {
  const out = {};
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chromium')) continue;
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      const type = (cmd.match(/--type=([a-z-]+)/) || [, 'browser'])[1];
      out[`${pid} ${type}`] = (Number(stat[11]) + Number(stat[12])) * 10;
    } catch {}
  }
  return out;
}

const NOUI = '.topbar, .panel, .sheet-backdrop, .peer-flags, .toast { display: none !important; }';
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--use-fake-ui-for-media-stream', process.env.FPS ? `--use-fake-device-for-media-stream=fps=${process.env.FPS}` : '--use-fake-device-for-media-stream', '--allow-loopback-in-peer-connection',
    '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
});
const WATCH = () => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected' && !window.__connected) window.__connected = Date.now();
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
};
const variants = [
  ...DUET.map((d) => ({
    name: d.replace(/^https?:\/\//, ''),
    kind: 'duet',
    base: d.split('+')[0],
    css: d.split('+').slice(1).map((x) => ({ noui: NOUI, css: process.env.CSS })[x]).filter(Boolean).join('\n'),
    js: d.split('+').slice(1).filter((x) => x.startsWith('js:')).map((x) => x.slice(3)),
  })),
  { name: 'order.html', kind: 'order' },
  { name: 'classic.html', kind: 'classic' },
];
const stamp = Date.now() % 100000;
for (const [i, v] of variants.entries()) {
  v.names = [`aba${stamp}${i}`, `abb${stamp}${i}`];
  v.pages = [];
  v.runs = [];
  for (const name of v.names) {
    const ctx = await browser.newContext({ permissions: ['camera', 'microphone'], bypassCSP: !!v.css });
    await ctx.addInitScript(WATCH);
    if (process.env.CAPS) await ctx.addInitScript({ path: new URL('captures.js', import.meta.url).pathname });
    for (const path of v.js ?? []) await ctx.addInitScript({ path });
    if (v.css) {
      await ctx.addInitScript((css) => document.addEventListener('DOMContentLoaded', () => {
        const style = document.createElement('style');
        style.textContent = css;
        document.head.appendChild(style);
      }), v.css);
    }
    const p = await ctx.newPage();
    await p.goto(v.kind === 'duet' ? `${v.base}/u/${name}` : `${here}/${v.kind}?name=${name}`);
    v.pages.push(p);
  }
}
await new Promise((r) => setTimeout(r, 2500));

async function call(v) {
  const [a, b] = v.pages;
  await b.evaluate((kind) => {
    if (kind === 'classic') window.confirm = () => true;
    if (kind !== 'duet') return; // order.html accepts by itself
    const seen = new MutationObserver(() => {
      if (!document.querySelector('[role=alertdialog]')) return;
      seen.disconnect();
      setTimeout(() => document.querySelector('[role=alertdialog] button.accept')?.click(), 0);
    });
    seen.observe(document.body, { subtree: true, childList: true });
  }, v.kind);
  for (const p of [a, b]) {
    await p.evaluate((kind) => {
      window.__connected = 0;
      window.__caps = [];
      const video = document.querySelector(kind === 'duet' ? '#remote-video' : '#remote');
      window.__frame = new Promise((r) => video.requestVideoFrameCallback(() => r(Date.now())));
    }, v.kind);
  }
  const before = cpu();
  const clickAt = await a.evaluate((who) => {
    const button = [...document.querySelectorAll('button')].find(
      (x) => x.querySelector('.who')?.textContent === who || x.textContent.trim() === who,
    );
    const t = Date.now();
    button.click();
    return t;
  }, v.names[1]);
  const frames = [await a.evaluate(() => window.__frame), await b.evaluate(() => window.__frame)];
  const after = cpu();
  const connected = [await a.evaluate(() => window.__connected), await b.evaluate(() => window.__connected)];
  if (process.env.CAPS) {
    const caps = [...(await a.evaluate(() => window.__caps)), ...(await b.evaluate(() => window.__caps))];
    const from = (ts, sep) => ts.map((t) => t - clickAt).join(sep);
    const shown = from(caps.sort((x, y) => x - y), ' ');
    console.log(`${v.name.padEnd(28)} frames ${from(frames, ' / ')}  connected ${from(connected, ' / ')}  camera frames ${shown}`);
  }
  const used = {};
  for (const k in after) used[k.split(' ')[1]] = (used[k.split(' ')[1]] || 0) + after[k] - (before[k] || 0);
  if (v.kind === 'duet') {
    await a.evaluate(() => document.querySelector('button.hangup').click());
    for (const p of [a, b]) await p.waitForFunction(() => !document.querySelector('.call.live'));
  } else {
    await a.evaluate(() => document.getElementById('hangup').click());
    await b.waitForFunction(() => !document.getElementById('remote').srcObject);
  }
  await a.waitForTimeout(300);
  return { frame: frames.map((t) => t - clickAt), connected: connected.map((t) => t - clickAt), used };
}

for (const v of variants) await call(v); // each pair's first call starts its media stack
for (let i = 0; i < N; i++) {
  for (const v of i % 2 ? [...variants].reverse() : variants) v.runs.push(await call(v));
}
const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const classic = variants.at(-1);
const of = (v, key, side) => median(v.runs.map((r) => r[key][side]));
for (const v of variants) {
  const ratio = (side) => (of(v, 'frame', side) / of(classic, 'frame', side)).toFixed(2);
  const mean = (type) => Math.round(v.runs.reduce((s, r) => s + (r.used[type] || 0), 0) / v.runs.length);
  console.log(
    `${v.name.padEnd(28)} first frame ${of(v, 'frame', 0)} / ${of(v, 'frame', 1)} ms (x${ratio(0)} / x${ratio(1)})` +
      `  connected ${of(v, 'connected', 0)} / ${of(v, 'connected', 1)} ms` +
      // The sender's side of each frame: from the peer that sends it reaching `connected`.
      `  sender connected -> frame ${median(v.runs.map((r) => r.frame[0] - r.connected[1]))} / ${median(v.runs.map((r) => r.frame[1] - r.connected[0]))} ms` +
      `  CPU per call: renderers ${mean('renderer')}, GPU ${mean('gpu-process')}, browser ${mean('browser')} ms` +
      `  (caller's frames: ${v.runs.map((r) => r.frame[0]).join(' ')})`,
  );
}
await browser.close();
reference.close();
