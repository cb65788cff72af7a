// The reference pages (classic.html, order.html) served from their own origin on loopback,
// /webrtc/ forwarded to Duet: to the browser each is a same-origin page on Duet's relay, as the
// classic design's was. Plain CommonJS so that both the suite (tests/helpers.ts) and the by-hand
// perf/ab.mjs load it.
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

/** Serves `/classic?name=…` and `/order?name=…`; resolves to `{ url, close }`. */
async function startReference(duet) {
  const pages = {};
  for (const name of ['classic', 'order']) pages[name] = fs.readFileSync(path.join(__dirname, `${name}.html`));
  const server = http.createServer((req, res) => {
    const page = pages[(req.url || '').slice(1).split('?')[0]];
    res.writeHead(page ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
    res.end(page || '');
  });
  server.on('upgrade', (req, socket, head) => {
    const upstream = net.connect(Number(duet.port || 80), duet.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(lines.join('\r\n') + '\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.setNoDelay(true);
    socket.setNoDelay(true);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

module.exports = { startReference };
