#!/usr/bin/env bash
# One Duet server of the NAT lab, in the "internet" namespace at 198.18.0.1:PORT, logging to
# end2end/test-results/natlab-logs/duet-PORT.log (run.sh starts them; the suite restarts one).
#   server.sh start PORT ARGS...   start it (the arguments are kept for a restart)
#   server.sh restart PORT         stop it with SIGTERM, as a deployment would, and start it again
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LOGS="$ROOT/end2end/test-results/natlab-logs"
BIN="${DUET_BIN:-$ROOT/target/debug/duet}"
action=$1 port=$2
shift 2
args="$LOGS/duet-$port.args" pidfile="$LOGS/duet-$port.pid"
case "$action" in
  start) printf '%s\n' "$@" >"$args" ;;
  restart)
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    ;;
  *) echo "server.sh start PORT ARGS... | restart PORT" >&2; exit 2 ;;
esac
mapfile -t saved <"$args"
cd "$ROOT"
"$HERE/lab.sh" exec pub env LEPTOS_OUTPUT_NAME=duet LEPTOS_SITE_ROOT=target/site \
  LEPTOS_SITE_PKG_DIR=pkg RUST_LOG=info "$BIN" --addr "198.18.0.1:$port" "${saved[@]}" \
  </dev/null >>"$LOGS/duet-$port.log" 2>&1 &
echo $! >"$pidfile"
