// Waits for the server `cargo leptos end-to-end` starts (it does not wait for readiness itself).
export default async function globalSetup() {
  const url = `${process.env.DUET_E2E_URL ?? 'http://127.0.0.1:3000'}/healthz`;
  const deadline = Date.now() + 180_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250)); // polling a process we do not control
  }
  throw new Error(`server did not come up at ${url}: ${last}`);
}
