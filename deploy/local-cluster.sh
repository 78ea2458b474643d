#!/usr/bin/env bash
# Runs a three-node raftinel cluster on 127.0.0.1 for development.
#
#   bash deploy/local-cluster.sh [--fresh]
#
# Builds the release binary, writes one config per node, starts the nodes in the background, waits
# (at most 20 s) for a Raft leader, prints the `raftinel ctl` commands to try, then stays in the
# foreground until Ctrl-C / SIGTERM, which stops the nodes cleanly (SIGTERM) and waits for them.
#
# Environment:
#   RAFTINEL_LOCAL_DIR  working directory: configs, data, logs (default ./local-cluster)
#   RAFTINEL_BASE_PORT  node N serves gRPC on BASE+N and Sentinel on BASE+10+N
#                       (default 26380: gRPC 26381-26383, Sentinel 26391-26393; keep it below
#                       the kernel's ephemeral range, 32768+, or outgoing connections may take it)
#   RAFTINEL_BIN        use this raftinel binary instead of building one
#   RUST_LOG            passed to the nodes (default: the binary's own filter)
#
# Data persists between runs: a restart re-uses each node's data dir. --fresh wipes them first.
# Needs only cargo and a base Debian system (bash, coreutils, util-linux): no curl, jq or other packages.

set -euo pipefail

readonly NODE_IDS=(1 2 3)
readonly HOST=127.0.0.1
readonly LEADER_WAIT_S=20
readonly STOP_WAIT_S=20

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT

FRESH=0
LOCAL_DIR=
BASE_PORT=
BIN=
CLUSTER=
declare -A NODE_PID=()
STOPPING=0
DEAD=
STATUS=0

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

parse_args() {
    while (($# > 0)); do
        case $1 in
            --fresh) FRESH=1 ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument '$1' (try --help)" ;;
        esac
        shift
    done
}

setup_env() {
    BASE_PORT=${RAFTINEL_BASE_PORT:-26380}
    if ! [[ $BASE_PORT =~ ^[1-9][0-9]*$ ]] || ((BASE_PORT < 1024 || BASE_PORT > 65515)); then
        die "RAFTINEL_BASE_PORT='$BASE_PORT' must be a number from 1024 to 65515"
    fi

    local dir=${RAFTINEL_LOCAL_DIR:-./local-cluster}
    mkdir -p -- "$dir"
    LOCAL_DIR=$(cd -- "$dir" && pwd)
    # Keep the working directory out of `git status` when it sits inside the repository.
    [[ -e $LOCAL_DIR/.gitignore ]] || printf '*\n' >"$LOCAL_DIR/.gitignore"

    local addrs=() id
    for id in "${NODE_IDS[@]}"; do
        addrs+=("$(grpc_addr "$id")")
    done
    CLUSTER=$(IFS=,; printf '%s' "${addrs[*]}")
}

grpc_addr() { printf '%s:%d' "$HOST" $((BASE_PORT + $1)); }
sentinel_addr() { printf '%s:%d' "$HOST" $((BASE_PORT + 10 + $1)); }
node_dir() { printf '%s/node%d' "$LOCAL_DIR" "$1"; }
pid_file() { printf '%s/node%d.pid' "$LOCAL_DIR" "$1"; }
log_file() { printf '%s/node%d.log' "$LOCAL_DIR" "$1"; }

# Refuses to start over nodes that a previous run (still running) owns.
check_not_running() {
    local id pid
    for id in "${NODE_IDS[@]}"; do
        [[ -f $(pid_file "$id") ]] || continue
        pid=$(<"$(pid_file "$id")")
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q raftinel; then
            die "node $id is already running (pid $pid, from $(pid_file "$id")); stop that run first"
        fi
        rm -f -- "$(pid_file "$id")"
    done
}

port_in_use() {
    # A connection that succeeds means something listens there; bash's /dev/tcp needs no extra tools.
    (: <>"/dev/tcp/$HOST/$1") 2>/dev/null
}

check_ports() {
    local id port
    for id in "${NODE_IDS[@]}"; do
        for port in $((BASE_PORT + id)) $((BASE_PORT + 10 + id)); do
            ! port_in_use "$port" ||
                die "port $HOST:$port is in use; stop what uses it or set RAFTINEL_BASE_PORT"
        done
    done
}

build() {
    if [[ -n ${RAFTINEL_BIN:-} ]]; then
        BIN=$RAFTINEL_BIN
        [[ -x $BIN ]] || die "RAFTINEL_BIN='$BIN' is not an executable file"
        return
    fi
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) or set RAFTINEL_BIN"
    log "building (cargo build --release)..."
    (cd -- "$REPO_ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    local target=${CARGO_TARGET_DIR:-target}
    [[ $target == /* ]] || target=$REPO_ROOT/$target
    BIN=$target/release/raftinel
    [[ -x $BIN ]] || die "build produced no binary at $BIN"
}

# --fresh: remove what this script created (data, configs, logs), nothing else in the directory.
wipe() {
    local id
    log "--fresh: wiping $LOCAL_DIR"
    for id in "${NODE_IDS[@]}"; do
        rm -rf -- "$(node_dir "$id")" "$(log_file "$id")" "$(pid_file "$id")"
    done
    rm -f -- "$LOCAL_DIR/base-port"
}

# The Raft log remembers the members' addresses, so a data dir only works with the ports it was
# created with.
check_base_port() {
    local stamp=$LOCAL_DIR/base-port
    if [[ -f $stamp && -d $(node_dir "${NODE_IDS[0]}")/data ]]; then
        local old
        old=$(<"$stamp")
        [[ $old == "$BASE_PORT" ]] ||
            die "the data in $LOCAL_DIR was created with RAFTINEL_BASE_PORT=$old; use that, or --fresh"
    fi
    printf '%s\n' "$BASE_PORT" >"$stamp"
}

write_configs() {
    local id peer dir
    for id in "${NODE_IDS[@]}"; do
        dir=$(node_dir "$id")
        mkdir -p -- "$dir"
        {
            printf '# Written by deploy/local-cluster.sh (rewritten on every run). Keys: docs/config.md\n'
            printf 'id = %d\n' "$id"
            printf 'listen = "%s"\n' "$(grpc_addr "$id")"
            printf 'sentinel-listen = "%s"\n' "$(sentinel_addr "$id")"
            printf 'data-dir = "%s/data"\n' "$dir"
            printf '\n[peers]\n'
            for peer in "${NODE_IDS[@]}"; do
                printf '%d = "%s"\n' "$peer" "$(grpc_addr "$peer")"
            done
        } >"$dir/raftinel.toml"
    done
}

start_nodes() {
    local id log pid
    for id in "${NODE_IDS[@]}"; do
        log=$(log_file "$id")
        printf '\n===== %s: starting node %d =====\n' "$(date '+%F %T')" "$id" >>"$log"
        # setsid: a node gets its own session, so a Ctrl-C in this terminal reaches only this
        # script, which then stops the nodes in order (SIGTERM) instead of racing them.
        setsid "$BIN" serve --config "$(node_dir "$id")/raftinel.toml" </dev/null >>"$log" 2>&1 &
        pid=$!
        NODE_PID[$id]=$pid
        printf '%d\n' "$pid" >"$(pid_file "$id")"
        log "node $id started: pid $pid, gRPC $(grpc_addr "$id"), log $log"
    done
}

# Sets DEAD to the id of a started node that has exited, or to "" if all are running.
# (Runs in this shell, not in $(...): only this shell can `wait` for its children.)
find_dead_node() {
    local id
    DEAD=
    for id in "${!NODE_PID[@]}"; do
        if ! kill -0 "${NODE_PID[$id]}" 2>/dev/null; then
            DEAD=$id
            return
        fi
    done
}

# Reaps node $1 and forgets it; sets STATUS to its exit status.
reap_node() {
    STATUS=0
    wait "${NODE_PID[$1]}" 2>/dev/null || STATUS=$?
    unset 'NODE_PID[$1]'
    rm -f -- "$(pid_file "$1")"
}

show_logs() {
    local id
    for id in "${NODE_IDS[@]}"; do
        printf '\n----- last lines of %s -----\n' "$(log_file "$id")" >&2
        tail -n 25 -- "$(log_file "$id")" >&2 || true
    done
}

wait_for_leader() {
    local deadline=$((SECONDS + LEADER_WAIT_S)) out
    log "waiting up to ${LEADER_WAIT_S}s for a leader..."
    while ((SECONDS < deadline)); do
        find_dead_node
        if [[ -n $DEAD ]]; then
            reap_node "$DEAD"
            log "node $DEAD exited with status $STATUS before a leader appeared"
            return 1
        fi
        # A restarted node can report itself leader from its stored vote before any peer is up,
        # so `status` alone proves nothing: a linearizable read (`masters`) needs a real quorum.
        if timeout 5 "$BIN" ctl --cluster "$CLUSTER" masters >/dev/null 2>&1 &&
            out=$(timeout 5 "$BIN" ctl --cluster "$CLUSTER" status 2>/dev/null) &&
            grep -q '^leader [0-9]' <<<"$out"; then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 0.5
    done
    log "no leader after ${LEADER_WAIT_S}s"
    return 1
}

print_help() {
    local c sentinels=() id
    c="$(printf '%q' "$BIN") ctl --cluster $CLUSTER"
    for id in "${NODE_IDS[@]}"; do
        sentinels+=("$(sentinel_addr "$id")")
    done
    cat <<EOF

raftinel local cluster is up (data: $LOCAL_DIR).
Nodes: gRPC     $CLUSTER
       Sentinel $(IFS=,; printf '%s' "${sentinels[*]}") (not served yet)

Try, from another terminal:
  $c status
  $c monitor mymaster 127.0.0.1 6379 2
  $c master mymaster --json
  $c watch    # new events (--from 1 replays retained ones first); Ctrl-C stops it

Logs: tail -f $LOCAL_DIR/node*.log   (set RUST_LOG=debug before starting for more)
Ctrl-C here stops the three nodes; run again to restart them on the same data (--fresh to wipe it).
EOF
}

# Sends SIGTERM to every running node and waits for them (SIGKILL after ${STOP_WAIT_S}s).
# Returns non-zero if any node did not exit with status 0.
stop_nodes() {
    local id pid rc=0 deadline
    ((${#NODE_PID[@]} > 0)) || return 0
    log "stopping nodes (SIGTERM)..."
    for id in "${!NODE_PID[@]}"; do
        kill -TERM "${NODE_PID[$id]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + STOP_WAIT_S))
    for id in "${NODE_IDS[@]}"; do
        [[ -n ${NODE_PID[$id]:-} ]] || continue
        pid=${NODE_PID[$id]}
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "node $id (pid $pid) still running after ${STOP_WAIT_S}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        reap_node "$id"
        log "node $id (pid $pid) exited with status $STATUS"
        ((STATUS == 0)) || rc=1
    done
    return "$rc"
}

on_signal() {
    ((STOPPING == 0)) || return 0
    STOPPING=1
    trap '' INT TERM HUP
    if stop_nodes; then
        exit 0
    fi
    exit 1
}

on_exit() {
    # Any unexpected exit (set -e, a failed check) must not leave nodes running.
    ((${#NODE_PID[@]} == 0)) || stop_nodes || true
}

# Foreground: returns only when a node exits on its own (signals are handled by on_signal).
supervise() {
    while true; do
        find_dead_node
        if [[ -n $DEAD ]]; then
            reap_node "$DEAD"
            log "node $DEAD exited unexpectedly with status $STATUS; see $(log_file "$DEAD")"
            return 1
        fi
        sleep 1 &
        wait $! || true
    done
}

main() {
    parse_args "$@"
    setup_env
    check_not_running
    build
    ((FRESH == 0)) || wipe
    check_base_port
    check_ports
    write_configs

    trap on_exit EXIT
    trap on_signal INT TERM HUP
    start_nodes
    if ! wait_for_leader; then
        show_logs
        stop_nodes || true
        exit 1
    fi
    print_help
    supervise || {
        stop_nodes || true
        exit 1
    }
}

main "$@"
