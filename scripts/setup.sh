# Sourced by scripts/serve and scripts/test: installs what is missing, idempotently.
# Every step checks first and prints "ok" when there is nothing to do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132
AIORTC_VERSION=1.16.0
WEBSOCKETS_VERSION=17.4

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# The wasm-bindgen CLI must equal the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

setup_build() {
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "ok: wasm32-unknown-unknown target"
  else
    say "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi

  if [ "$(cargo leptos --version 2>/dev/null)" = "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    say "ok: cargo-leptos $CARGO_LEPTOS_VERSION"
  else
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes a while the first time)"
    cargo install cargo-leptos@"$CARGO_LEPTOS_VERSION" --locked
  fi

  local wb
  wb="$(wasm_bindgen_version)"
  if [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $wb" ]; then
    say "ok: wasm-bindgen CLI $wb"
  else
    # Not --locked: its lock file wants a crate version the registry mirror lacks.
    say "installing the wasm-bindgen CLI $wb"
    cargo install wasm-bindgen-cli@"$wb" --force
  fi

  # Debian's binaryen (wasm-opt 108) emits WASM that fails at hydration; npm's 132 is good.
  if "$TOOLS/node_modules/.bin/wasm-opt" --version 2>/dev/null | grep -q "version $BINARYEN_VERSION"; then
    say "ok: wasm-opt $BINARYEN_VERSION"
  else
    say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) into .tools/"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --no-save "binaryen@$BINARYEN_VERSION"
  fi
  export PATH="$TOOLS/node_modules/.bin:$HOME/.cargo/bin:$PATH"
}

setup_test() {
  setup_build
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  if command -v chromium >/dev/null 2>&1; then
    say "ok: chromium"
  else
    say "installing Debian's chromium"
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends chromium
  fi
  # A Chinese font, so the zh-CN screenshots of the e2e suite show words, not boxes.
  if fc-list :lang=zh 2>/dev/null | grep -q .; then
    say "ok: a Chinese font"
  else
    say "installing a Chinese font (fonts-wqy-microhei)"
    $sudo apt-get install -y --no-install-recommends fonts-wqy-microhei \
      || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends fonts-wqy-microhei; }
  fi

  # The NAT lab (end2end/natlab): NAT rules in network namespaces, and a TURN server.
  local missing=()
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
  if [ ${#missing[@]} = 0 ]; then
    say "ok: iptables, coturn (NAT lab)"
  else
    say "installing ${missing[*]} (NAT lab)"
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" \
      || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
  fi

  # Several nodes as one relay (tests/relay.rs run again across two nodes, tests/cluster.rs):
  # every test starts a redis-server of its own.
  if command -v redis-server >/dev/null 2>&1; then
    say "ok: redis-server (cluster tests)"
  else
    say "installing redis-server (cluster tests)"
    $sudo apt-get install -y --no-install-recommends redis-server \
      || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends redis-server; }
  fi

  # tests/deploy.rs checks deploy/duet.service with systemd-analyze.
  if command -v systemd-analyze >/dev/null 2>&1; then
    say "ok: systemd-analyze (unit check)"
  else
    say "installing systemd (systemd-analyze, for the unit check)"
    $sudo apt-get install -y --no-install-recommends systemd \
      || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends systemd; }
  fi

  # The e2e suite's independent WebRTC peer (end2end/peer/peer.py): aiortc from PyPI, in a venv.
  local venv="$TOOLS/peer-venv"
  if "$venv/bin/python" -c "import aiortc, websockets, sys; sys.exit(
        (aiortc.__version__, websockets.__version__) != ('$AIORTC_VERSION', '$WEBSOCKETS_VERSION'))" 2>/dev/null; then
    say "ok: aiortc $AIORTC_VERSION (e2e peer venv)"
  else
    say "installing aiortc $AIORTC_VERSION into .tools/peer-venv (e2e peer)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "aiortc==$AIORTC_VERSION" "websockets==$WEBSOCKETS_VERSION"
  fi

  # Playwright's own browser download cannot work offline: we use /usr/bin/chromium.
  local stamp="$ROOT/end2end/node_modules/.duet-lock"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$ROOT/end2end/package-lock.json"; then
    say "ok: end2end npm packages"
  else
    say "installing end2end npm packages"
    (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    cp "$ROOT/end2end/package-lock.json" "$stamp"
  fi
}
