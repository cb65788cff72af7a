#!/usr/bin/env bash
# Runs the NAT lab suite: builds the lab (lab.sh), starts coturn and three Duet servers in the
# "internet" namespace, runs lab.spec.ts (Chromium inside the home namespaces), and tears it all
# down, also on failure. Needs root, iptables, coturn, and a debug build of Duet
# (target/debug/duet and target/site, as `cargo leptos end-to-end` or `cargo leptos build` leave
# them). Extra arguments go to Playwright (e.g. -g switch).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LAB="$HERE/lab.sh"
LOGS="$ROOT/end2end/test-results/natlab-logs"
BIN="${DUET_BIN:-$ROOT/target/debug/duet}"
export DUET_BIN="$BIN"

[ -x "$BIN" ] || { echo "natlab: no Duet binary at $BIN (build it first)" >&2; exit 2; }
rm -rf "$LOGS" && mkdir -p "$LOGS"
trap '"$LAB" down' EXIT
"$LAB" up

# A fresh secret shared by coturn and the :3001 server; :3002 has a wrong one.
SECRET="lab-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# TURN over TLS needs a certificate: a fresh self-signed one for coturn's lab address. The lab's
# browsers trust exactly its key (DUET_LAB_TURN_SPKI, `--ignore-certificate-errors-spki-list`).
TLS="$LOGS/turn-tls"
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=198.18.0.1" -addext "subjectAltName=IP:198.18.0.1" \
  -keyout "$TLS/key.pem" -out "$TLS/cert.pem" 2>/dev/null
DUET_LAB_TURN_SPKI=$(openssl x509 -in "$TLS/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)
export DUET_LAB_TURN_SPKI

# coturn: the time-limited credentials Duet hands out (use-auth-secret); UDP and TCP on 3478, TLS
# on 5349. The homes' private addresses are denied as peers: the relay cannot reach them, and a
# failed send would make coturn drop the whole allocation.
"$LAB" exec pub turnserver -n --listening-ip 198.18.0.1 --relay-ip 198.18.0.1 \
  --listening-port 3478 --tls-listening-port 5349 --cert "$TLS/cert.pem" --pkey "$TLS/key.pem" \
  --min-port 49152 --max-port 49999 \
  --use-auth-secret --static-auth-secret "$SECRET" --realm duet.lab \
  --no-dtls --no-cli --no-software-attribute \
  --denied-peer-ip 198.19.0.0-198.19.255.255 \
  --log-file stdout --simple-log >"$LOGS/coturn.log" 2>&1 &

duet() { "$HERE/server.sh" start "$@"; } # duet PORT ARGS...: a Duet server on 198.18.0.1:PORT
TURN_URL="turn:198.18.0.1:3478?transport=udp"
# The README's set: UDP first, TCP and TLS for networks that block UDP.
TURN_URLS="$TURN_URL,turn:198.18.0.1:3478?transport=tcp,turns:198.18.0.1:5349?transport=tcp"
duet 3000 --stun-addr 198.18.0.1:3578
duet 3001 --stun-addr 198.18.0.1:3579 --turn-url "$TURN_URLS" --turn-secret "$SECRET"
duet 3002 --turn-url "$TURN_URL" --turn-secret "wrong-$SECRET"

# Wait (bounded) until every server answers and coturn listens.
"$LAB" exec lan-b python3 - <<'EOF'
import socket, sys, time, urllib.request
deadline = time.time() + 60
for port in (3000, 3001, 3002):
    while True:
        try:
            urllib.request.urlopen(f"http://198.18.0.1:{port}/healthz", timeout=1).read()
            break
        except Exception as e:
            if time.time() > deadline:
                sys.exit(f"natlab: server :{port} did not come up: {e}")
            time.sleep(0.2)
# Its TLS port takes connections, and a STUN Binding request gets an answer: it is up.
while True:
    try:
        socket.create_connection(("198.18.0.1", 5349), timeout=1).close()
        break
    except OSError as e:
        if time.time() > deadline:
            sys.exit(f"natlab: coturn's TLS port did not come up: {e}")
        time.sleep(0.2)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
request = bytes.fromhex("000100002112a442") + bytes(12)
while True:
    s.sendto(request, ("198.18.0.1", 3478))
    try:
        s.recvfrom(512)
        break
    except OSError as e:
        if time.time() > deadline:
            sys.exit(f"natlab: coturn did not come up: {e}")
EOF

cd "$ROOT/end2end"
status=0
npx playwright test -c natlab/playwright.config.ts "$@" || status=$?
if [ "$status" != 0 ]; then
  for f in "$LOGS"/*.log; do echo "--- $f (last lines)"; tail -n 30 "$f"; done
fi
exit "$status"
