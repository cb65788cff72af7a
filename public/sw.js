// Duet's service worker: lets the app start without a network.
// The server serves this file with the build's content-addressed names in SHELL (duet.<hash>.wasm)
// and the build's hash in BUILD, so every build is a new worker with its own cache; activate
// drops the old ones. Those names never change content: cache first. Everything else network
// first: online, pages come fresh; offline, the last copy, and for a page never visited, the
// offline page. Bump the version in CACHE when this file's logic changes.
const BUILD = "";
const CACHE = "duet-shell-v4" + BUILD;
const SHELL = [
  "/",
  "/offline.html",
  "/offline.js",
  "/pkg/duet.js",
  "/pkg/duet.wasm",
  "/pkg/duet.css",
  "/manifest.webmanifest",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
];
// Live data, never cached: signaling (WebSockets don't pass through fetch anyway), health,
// metrics, ICE configuration, the join redirect.
const LIVE = ["/webrtc/", "/healthz", "/metrics", "/config.json", "/go", "/lang/"];

// A first visit's page carried the WASM and left it in the "duet-inline" cache (see
// src/inline.rs): taken from there, not downloaded again (activate then drops that cache).
self.addEventListener("install", (event) => {
  event.waitUntil(
    Promise.all([caches.open(CACHE), caches.open("duet-inline")])
      .then(([cache, inline]) =>
        Promise.all(
          SHELL.map((url) =>
            inline.match(url).then((hit) => (hit ? cache.put(url, hit) : cache.add(url))),
          ),
        ),
      )
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (LIVE.some((p) => url.pathname.startsWith(p))) return;
  if (/^\/pkg\/.+\.[0-9a-f]{16}\.[a-z]+$/.test(url.pathname)) {
    event.respondWith(caches.match(request).then((cached) => cached || fetch(request)));
    return;
  }
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
        }
        return response;
      })
      .catch(async () => {
        const cached = await caches.match(request, { ignoreSearch: request.mode === "navigate" });
        if (cached) return cached;
        if (request.mode === "navigate") return caches.match("/offline.html");
        return Response.error();
      }),
  );
});

// A tap on the incoming-call notification brings the ringing page to the front (or opens it).
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((list) => {
      const page = list.find((c) => c.url === url) || list[0];
      return page ? page.focus() : self.clients.openWindow(url);
    }),
  );
});
