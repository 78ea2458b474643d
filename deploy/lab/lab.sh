#!/usr/bin/env bash
# A three-host lab on one machine, in network namespaces: hosts n1, n2, n3 (plus n4, spare, for a
# fourth raftinel node) and a client, wired to a bridge that lives in a namespace of its own (10.77.0.0/24; nothing is configured in the root
# namespace). Used by the README demo and by tests/lab.rs. Needs root, iproute2 and iptables.
#
#   lab.sh up                      create the namespaces (fails if they exist: run `down` first)
#   lab.sh down                    kill everything in them and delete them (always safe to run)
#   lab.sh run HOST CMD...         run CMD inside HOST (n1, n2, n3, n4, client)
#   lab.sh kill-host HOST          take HOST's link down, then kill -9 every process in it
#   lab.sh pause HOST PATTERN      SIGSTOP the processes in HOST whose command line matches
#   lab.sh resume HOST PATTERN     SIGCONT them
#   lab.sh partition HOST MODE [PEER]
#                                  cut HOST off from the other hosts (not from the client), or
#                                  from PEER only (a single link): MODE drop | reject (iptables)
#                                  | in (drop what HOST receives: one-way) | out (drop what it
#                                  sends) | link (its link down: the client is cut off too; no
#                                  PEER) | loss:PCT (iptables -m statistic)
#   lab.sh heal HOST               undo partition / kill-host's link down
#   lab.sh addr HOST               the host's address; `lab.sh addr vip` the demo VIP
#
# LAB_PREFIX (default empty) prefixes every namespace name, so a test lab and a demo lab can
# coexist. Addresses: n1 10.77.0.11, n2 10.77.0.12, n3 10.77.0.13, n4 10.77.0.14, client 10.77.0.100,
# VIP 10.77.0.200/24 on eth0.
set -euo pipefail

P="${LAB_PREFIX:-}"
HOSTS=(n1 n2 n3 n4 client)
BR="${P}br"

addr_of() {
  case "$1" in
    n1) echo 10.77.0.11 ;; n2) echo 10.77.0.12 ;; n3) echo 10.77.0.13 ;; n4) echo 10.77.0.14 ;;
    client) echo 10.77.0.100 ;; vip) echo 10.77.0.200 ;;
    *) echo "lab.sh: unknown host '$1' (n1, n2, n3, n4, client)" >&2; exit 2 ;;
  esac
}

ns() { echo "${P}$1"; }

exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

up() {
  for h in "${HOSTS[@]}" br; do
    if exists "$(ns "$h")"; then
      echo "lab.sh: namespace $(ns "$h") exists; run '$0 down' first" >&2
      exit 1
    fi
  done
  ip netns add "$BR"
  ip -n "$BR" link set lo up
  ip -n "$BR" link add br0 type bridge
  ip -n "$BR" link set br0 up
  for h in "${HOSTS[@]}"; do
    local n; n=$(ns "$h")
    ip netns add "$n"
    ip -n "$n" link set lo up
    # Created inside the host namespace, the peer moved into the bridge namespace: no interface
    # ever exists in the root namespace.
    ip -n "$n" link add eth0 type veth peer name "v-$h" netns "$BR"
    ip -n "$BR" link set "v-$h" master br0
    ip -n "$BR" link set "v-$h" up
    ip -n "$n" addr add "$(addr_of "$h")/24" dev eth0
    ip -n "$n" link set eth0 up
    ip netns exec "$n" iptables -N LAB_IN
    ip netns exec "$n" iptables -N LAB_OUT
    ip netns exec "$n" iptables -I INPUT -j LAB_IN
    ip netns exec "$n" iptables -I OUTPUT -j LAB_OUT
  done
}

down() {
  for h in "${HOSTS[@]}"; do
    local n; n=$(ns "$h")
    if exists "$n"; then
      ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    fi
  done
  for h in "${HOSTS[@]}" br; do
    local n; n=$(ns "$h")
    exists "$n" && ip netns del "$n" 2>/dev/null || true
  done
}

cut() {
  local host="$1" mode="$2" peer="${3:-}" n; n=$(ns "$host")
  case "$mode" in
    link)
      [ -z "$peer" ] || { echo "lab.sh: mode link takes no PEER (it cuts every link)" >&2; exit 2; }
      ip -n "$n" link set eth0 down; return ;;
  esac
  [ -z "$peer" ] || addr_of "$peer" >/dev/null
  for other in n1 n2 n3 n4; do
    [ "$other" = "$host" ] && continue
    [ -z "$peer" ] || [ "$other" = "$peer" ] || continue
    local a; a=$(addr_of "$other")
    case "$mode" in
      in) ip netns exec "$n" iptables -A LAB_IN -s "$a" -j DROP ;;
      out) ip netns exec "$n" iptables -A LAB_OUT -d "$a" -j DROP ;;
      drop)
        ip netns exec "$n" iptables -A LAB_IN -s "$a" -j DROP
        ip netns exec "$n" iptables -A LAB_OUT -d "$a" -j DROP ;;
      reject)
        # Peers get "connection refused" at once. The RSTs and port-unreachables that the INPUT
        # rules emit must pass OUTPUT, and a tcp-reset REJECT in OUTPUT would turn the host's own
        # connects into timeouts: plain REJECT there.
        ip netns exec "$n" iptables -A LAB_IN -s "$a" -p tcp -j REJECT --reject-with tcp-reset
        ip netns exec "$n" iptables -A LAB_IN -s "$a" -j REJECT
        ip netns exec "$n" iptables -A LAB_OUT -d "$a" -p tcp --tcp-flags RST RST -j ACCEPT
        ip netns exec "$n" iptables -A LAB_OUT -d "$a" -p icmp --icmp-type port-unreachable -j ACCEPT
        ip netns exec "$n" iptables -A LAB_OUT -d "$a" -j REJECT ;;
      loss:*)
        local pct="${mode#loss:}"
        ip netns exec "$n" iptables -A LAB_IN -s "$a" -m statistic --mode random \
          --probability "$(awk -v p="$pct" 'BEGIN { printf "%.4f", p / 100 }')" -j DROP ;;
      *) echo "lab.sh: partition mode '$mode' is not drop, reject, in, out, link or loss:PCT" >&2; exit 2 ;;
    esac
  done
}

heal() {
  local n; n=$(ns "$1")
  ip netns exec "$n" iptables -F LAB_IN
  ip netns exec "$n" iptables -F LAB_OUT
  ip -n "$n" link set eth0 up
}

signal_matching() {
  local n; n=$(ns "$1")
  for pid in $(ip netns pids "$n"); do
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$3"; then
      kill "-$2" "$pid"
    fi
  done
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up) up ;;
  down) down ;;
  run) h="$1"; shift; exec ip netns exec "$(ns "$h")" "$@" ;;
  kill-host)
    # Link first: a process dying of its parent's death (keepalived's VRRP child) could
    # otherwise still say goodbye on the wire, which a lost host never does.
    ip -n "$(ns "$1")" link set eth0 down
    ip netns pids "$(ns "$1")" | xargs -r kill -9 ;;
  pause) signal_matching "$1" STOP "$2" ;;
  resume) signal_matching "$1" CONT "$2" ;;
  partition) cut "$1" "$2" "${3:-}" ;;
  heal) heal "$1" ;;
  addr) addr_of "$1" ;;
  *) sed -n '2,/^set -euo/{/^set/!p}' "$0"; exit 2 ;;
esac
