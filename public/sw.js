// Duet's service worker: lets the app start without a network.
// Network first, always: online, every page and asset comes fresh (the build's file names carry no
// content hash, so a cache-first shell would serve stale WASM); offline, the last copy, and for a
// page never visited, the offline page. Bump CACHE when SHELL changes; activate drops old caches.
const CACHE = "duet-shell-v2";
const SHELL = [
  "/",
  "/offline.html",
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

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
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
