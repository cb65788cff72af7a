#!/usr/bin/env bash
# The NAT lab: a small internet in network namespaces, for calls across real NATs.
#
#   duet-pub      "the internet", 198.18.0.0/24 on a bridge; the Duet servers and coturn run
#                 here at 198.18.0.1
#   duet-nat-a    home router A: wan 198.18.0.10, lan 198.19.1.1
#   duet-nat-a2   a second uplink for home A (mobile data): wan 198.18.0.12, lan 198.19.3.1
#   duet-nat-b    home router B: wan 198.18.0.11, lan 198.19.2.1
#   duet-lan-a    a browser in home A: eth0 198.19.1.2 (via nat-a), eth1 198.19.3.2 (via nat-a2)
#   duet-lan-b    a browser in home B: eth0 198.19.2.2
#
# Every address is in 198.18.0.0/15 (reserved for network tests) and exists only inside these
# namespaces; nothing routes between the two homes except through their routers' NAT.
# NAT kinds: "cone" (masquerade keeping ports: one public port per socket, whatever the
# destination; replies only from where we sent to: port-restricted cone) and "symmetric"
# (masquerade with fully random ports: a new public port for every destination).
# Firewalls (what a home lets out): "open"; "no-udp" (an office that blocks UDP: TCP only);
# "web-only" (TCP to the Duet servers' ports 3000-3002 and to TURN over TLS on 5349, nothing
# else: a network that lets out only web traffic).
#
#   lab.sh up | down              build / remove the lab (down also cleans up a half-built one)
#   lab.sh nat a|a2|b cone|symmetric
#   lab.sh firewall a|a2|b open|no-udp|web-only
#   lab.sh uplink a1|a2           home A's browser uses its first or second uplink
#   lab.sh exec NS CMD...         run a command in a namespace
set -euo pipefail

P=duet-
NAMESPACES=(pub nat-a nat-a2 nat-b lan-a lan-b)

ns() { ip netns exec "$P$1" "${@:2}"; }

# veth pair between two namespaces: link NS1 IF1 NS2 IF2
link() {
  ip link add "$2" netns "$P$1" type veth peer name "$4" netns "$P$3"
  ip -n "$P$1" link set "$2" up
  ip -n "$P$3" link set "$4" up
}

router() { # router NAME WAN_ADDR LAN_ADDR LAN_NS LAN_IF LAN_HOST_ADDR
  local name=$1 wan=$2 lan=$3 lan_ns=$4 lan_if=$5 host=$6
  link "$name" wan pub "$name"
  ip -n "${P}pub" link set "$name" master br0
  ip -n "$P$name" addr add "$wan/24" dev wan
  link "$name" lan "$lan_ns" "$lan_if"
  ip -n "$P$name" addr add "$lan/24" dev lan
  ip -n "$P$lan_ns" addr add "$host/24" dev "$lan_if"
  ns "$name" sysctl -qw net.ipv4.ip_forward=1
  ns "$name" iptables -N fw # what the home lets out (see `firewall`)
  nat "$name" cone
}

# nat ROUTER cone|symmetric: replaces the router's NAT rule (and forgets old mappings).
nat() {
  local name=$1 kind=$2 random=""
  case "$kind" in
    cone) ;;
    symmetric) random="--random-fully" ;;
    *) echo "nat kind: cone or symmetric, not $kind" >&2; exit 2 ;;
  esac
  ns "$name" iptables -t nat -F POSTROUTING
  # shellcheck disable=SC2086
  ns "$name" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE $random
  # Nothing from the internet reaches the home unless it answers something sent from it.
  ns "$name" iptables -F FORWARD
  ns "$name" iptables -A FORWARD -i lan -j fw
  ns "$name" iptables -A FORWARD -i wan -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP
  # An unsolicited packet to the router itself is dropped before its conntrack entry is
  # confirmed: otherwise a peer's early hole-punching packet would occupy the public port
  # and the NAT would map the home's own packet to that peer to another port.
  ns "$name" iptables -F INPUT
  ns "$name" iptables -A INPUT -i wan -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP
  if command -v conntrack >/dev/null; then ns "$name" conntrack -F 2>/dev/null || true; fi
}

# firewall ROUTER open|no-udp|web-only: what the home lets out (replaces the previous rules).
firewall() {
  local name=$1 kind=$2
  ns "$name" iptables -F fw
  case "$kind" in
    open) ;;
    no-udp) ns "$name" iptables -A fw -p udp -j DROP ;;
    web-only)
      ns "$name" iptables -A fw -p tcp -m multiport --dports 3000:3002,5349 -j RETURN
      ns "$name" iptables -A fw -j DROP
      ;;
    *) echo "firewall kind: open, no-udp or web-only, not $kind" >&2; exit 2 ;;
  esac
}

# uplink a1|a2: home A's browser goes out through nat-a or nat-a2 (the other link is down,
# as when a phone leaves the Wi-Fi for mobile data).
uplink() {
  local on off addr gw
  case "$1" in
    a1) on=eth0 off=eth1 addr=198.19.1.2 gw=198.19.1.1 ;;
    a2) on=eth1 off=eth0 addr=198.19.3.2 gw=198.19.3.1 ;;
    *) echo "uplink: a1 or a2" >&2; exit 2 ;;
  esac
  # The old network's address goes with it, as on a phone leaving a Wi-Fi.
  ip -n "${P}lan-a" addr flush dev "$off"
  ip -n "${P}lan-a" link set "$off" down
  ip -n "${P}lan-a" link set "$on" up
  ip -n "${P}lan-a" addr replace "$addr/24" dev "$on"
  ip -n "${P}lan-a" route replace default via "$gw"
}

down() {
  for n in "${NAMESPACES[@]}"; do
    ip netns pids "$P$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$P$n" 2>/dev/null || true
  done
}

up() {
  down
  for n in "${NAMESPACES[@]}"; do
    ip netns add "$P$n"
    ip -n "$P$n" link set lo up
  done
  ip -n "${P}pub" link add br0 type bridge
  ip -n "${P}pub" link set br0 up
  ip -n "${P}pub" addr add 198.18.0.1/24 dev br0
  router nat-a 198.18.0.10 198.19.1.1 lan-a eth0 198.19.1.2
  router nat-a2 198.18.0.12 198.19.3.1 lan-a eth1 198.19.3.2
  router nat-b 198.18.0.11 198.19.2.1 lan-b eth0 198.19.2.2
  ip -n "${P}lan-b" route add default via 198.19.2.1
  uplink a1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  nat) nat "nat-$2" "$3" ;;
  firewall) firewall "nat-$2" "$3" ;;
  uplink) uplink "$2" ;;
  exec) exec ip netns exec "$P$2" "${@:3}" ;;
  *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
