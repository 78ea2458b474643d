#!/usr/bin/env bash
# Runs raftinel's whole job on 127.0.0.1 for development: three Redis instances (a master and two
# replicas) watched by a three-node raftinel cluster, ready for a failover.
#
#   bash deploy/local-cluster.sh [--fresh]
#
# Installs redis-server with apt-get if it is missing (only as root; otherwise prints the command),
# builds the release binary, makes the cluster's certificates (`raftinel certs cluster`: a CA, one
# certificate per node, an admin certificate for ctl; kept in certs/ across runs), writes one
# config per node (mTLS between the nodes), starts the nodes in the background, waits
# (at most 20 s) for a Raft leader, starts three redis-servers (no persistence, logs and pid files in
# the working directory), runs `raftinel ctl monitor mymaster 127.0.0.1 <master port> 2`, waits (at
# most 30 s) until raftinel knows both replicas, prints how to watch and how to trigger a failover
# (kill -9 of the master), then stays in the foreground until Ctrl-C / SIGTERM, which stops the nodes
# cleanly (SIGTERM), then the redis-servers, and waits for them.
#
# Environment:
#   RAFTINEL_LOCAL_DIR  working directory: configs, data, logs, pid files (default ./local-cluster)
#   RAFTINEL_BASE_PORT  node N serves gRPC on BASE+N and Sentinel on BASE+10+N; redis-server N
#                       listens on BASE+20+N (instance 1 starts as the master)
#                       and HTTP on BASE+30+N
#                       (default 26380: gRPC 26381-26383, Sentinel 26391-26393, Redis 26401-26403,
#                       HTTP 26411-26413;
#                       keep it below the kernel's ephemeral range, 32768+, or outgoing connections
#                       may take it)
#   RAFTINEL_BIN        use this raftinel binary instead of building one
#   RUST_LOG            passed to the nodes (default: the binary's own filter)
#
# Raft data persists between runs: a restart re-uses each node's data dir (and a master raftinel
# already monitors is started as the master again). --fresh wipes them first. Redis keeps no data.
# Needs cargo, redis-server and redis-cli (Debian: `apt-get install redis-server`) and a base Debian
# system (bash, coreutils, util-linux): no curl, jq or other packages.

set -euo pipefail

readonly NODE_IDS=(1 2 3)
readonly REDIS_IDS=(1 2 3)
readonly MASTER_NAME=mymaster
readonly QUORUM=2
readonly HOST=127.0.0.1
readonly LEADER_WAIT_S=20
readonly REDIS_WAIT_S=10
readonly REPLICAS_WAIT_S=30
readonly STOP_WAIT_S=20

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT

FRESH=0
LOCAL_DIR=
BASE_PORT=
BIN=
CLUSTER=
declare -A NODE_PID=()
declare -A REDIS_PID=()
MASTER_ID=1
MONITORED=0
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
    if ! [[ $BASE_PORT =~ ^[1-9][0-9]*$ ]] || ((BASE_PORT < 1024 || BASE_PORT > 65512)); then
        die "RAFTINEL_BASE_PORT='$BASE_PORT' must be a number from 1024 to 65512"
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
    CERTS=$LOCAL_DIR/certs
    CTL_TLS=(--tls-cert "$CERTS/admin-admin.pem" --tls-key "$CERTS/admin-admin.key" --tls-ca "$CERTS/ca.pem")
}

grpc_addr() { printf '%s:%d' "$HOST" $((BASE_PORT + $1)); }
sentinel_addr() { printf '%s:%d' "$HOST" $((BASE_PORT + 10 + $1)); }
http_addr() { printf '%s:%d' "$HOST" $((BASE_PORT + 30 + $1)); }
node_dir() { printf '%s/node%d' "$LOCAL_DIR" "$1"; }
pid_file() { printf '%s/node%d.pid' "$LOCAL_DIR" "$1"; }
log_file() { printf '%s/node%d.log' "$LOCAL_DIR" "$1"; }
redis_port() { printf '%d' $((BASE_PORT + 20 + $1)); }
redis_dir() { printf '%s/redis%d' "$LOCAL_DIR" "$1"; }
redis_pid_file() { printf '%s/redis%d.pid' "$LOCAL_DIR" "$1"; }
redis_log_file() { printf '%s/redis%d.log' "$LOCAL_DIR" "$1"; }

# Succeeds if $1 is a live redis-server serving port $2 (its title is "redis-server HOST:PORT"), so
# a stale pid file never makes this script signal an unrelated process.
is_redis() {
    [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "redis-server.*:$2\b"
}

# The pid in redis-server $1's pid file if it is that instance, else nothing. Redis writes the file
# itself, so it also names an instance restarted by hand with the command print_help shows.
redis_pid_from_file() {
    local f pid
    f=$(redis_pid_file "$1")
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    ! is_redis "$pid" "$(redis_port "$1")" || printf '%s' "$pid"
}

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
    for id in "${REDIS_IDS[@]}"; do
        pid=$(redis_pid_from_file "$id")
        [[ -z $pid ]] ||
            die "redis-server $id is already running (pid $pid, from $(redis_pid_file "$id")); stop that run first (kill $pid)"
        rm -f -- "$(redis_pid_file "$id")"
    done
}

# redis-server (and redis-cli, same Debian package family) must be installed: with apt-get when
# running as root, otherwise the command to run is printed.
ensure_redis() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return 0
    fi
    if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
        die "redis-server / redis-cli not found; install them first: sudo apt-get install -y redis-server"
    fi
    log "redis-server not found: installing it (apt-get install -y redis-server)..."
    # The Debian package also enables its own redis-server service on port 6379; it is not used here.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; then
        log "apt-get install failed; refreshing the package lists (apt-get update) and retrying"
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; }; then
            die "could not install redis-server with apt-get"
        fi
    fi
    if ! { command -v redis-server >/dev/null && command -v redis-cli >/dev/null; }; then
        die "apt-get install redis-server did not provide redis-server and redis-cli"
    fi
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
    for id in "${REDIS_IDS[@]}"; do
        port=$(redis_port "$id")
        ! port_in_use "$port" ||
            die "port $HOST:$port (redis-server $id) is in use; stop what uses it or set RAFTINEL_BASE_PORT"
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
    for id in "${REDIS_IDS[@]}"; do
        rm -rf -- "$(redis_dir "$id")" "$(redis_log_file "$id")" "$(redis_pid_file "$id")"
    done
    rm -f -- "$LOCAL_DIR/base-port"
    rm -rf -- "$CERTS"
}

# The secure path is the default one: the nodes authenticate each other and ctl by certificate.
make_certs() {
    [[ -e $CERTS/ca.pem && -e $CERTS/admin-admin.pem ]] && return 0
    local args=() id
    for id in "${NODE_IDS[@]}"; do
        args+=(--node "$id=$HOST")
    done
    log "making certificates in $CERTS (raftinel certs cluster)"
    "$BIN" certs cluster --dir "$CERTS" "${args[@]}" --force >/dev/null
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
            printf '# Written by deploy/local-cluster.sh (rewritten on every run). Keys: docs/configuration.md\n'
            printf 'id = %d\n' "$id"
            printf 'listen = "%s"\n' "$(grpc_addr "$id")"
            printf 'sentinel-listen = "%s"\n' "$(sentinel_addr "$id")"
            printf 'http-listen = "%s"\n' "$(http_addr "$id")"
            printf 'data-dir = "%s/data"\n' "$dir"
            # Node N plays the host of redis-server N: it fences it unless it holds its lease.
            printf 'local-redis = ["%s:%d"]\n' "$HOST" "$(redis_port "$id")"
            printf '\n[peers]\n'
            for peer in "${NODE_IDS[@]}"; do
                printf '%d = "%s"\n' "$peer" "$(grpc_addr "$peer")"
            done
            printf '\n[tls]\ncert = "%s/node-%d.pem"\nkey = "%s/node-%d.key"\nca = "%s/ca.pem"\n' \
                "$CERTS" "$id" "$CERTS" "$id" "$CERTS"
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
        if timeout 5 "$BIN" ctl --cluster "$CLUSTER" "${CTL_TLS[@]}" masters >/dev/null 2>&1 &&
            out=$(timeout 5 "$BIN" ctl --cluster "$CLUSTER" "${CTL_TLS[@]}" status 2>/dev/null) &&
            grep -q '^leader [0-9]' <<<"$out"; then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 0.5
    done
    log "no leader after ${LEADER_WAIT_S}s"
    return 1
}

ctl() { timeout 10 "$BIN" ctl --cluster "$CLUSTER" "${CTL_TLS[@]}" "$@"; }

# Sets MASTER_ID: the instance raftinel already monitors as mymaster (Raft data from an earlier run,
# perhaps after a failover), else instance 1; MONITORED=1 in the first case.
find_master() {
    local out addr id
    MASTER_ID=1
    MONITORED=0
    if out=$(ctl master "$MASTER_NAME" 2>&1); then
        addr=$(awk 'NR == 1 { print $2 }' <<<"$out")
        for id in "${REDIS_IDS[@]}"; do
            if [[ $addr == "$HOST:$(redis_port "$id")" ]]; then
                MASTER_ID=$id
                MONITORED=1
                log "$MASTER_NAME is already monitored (Raft data from an earlier run): master $addr"
                return 0
            fi
        done
        log "the cluster already monitors $MASTER_NAME at '$addr', not one of this script's redis ports;"
        log "remove it (ctl remove $MASTER_NAME) or start with --fresh"
        return 1
    elif grep -q 'No such master' <<<"$out"; then
        return 0
    fi
    log "could not read $MASTER_NAME from the cluster: $out"
    return 1
}

# Sets REDIS_ARGS: the command line of redis-server $1 (no persistence, logs and pid file in the
# working directory); the master-to-be is given no --replicaof.
redis_args() {
    REDIS_ARGS=(--port "$(redis_port "$1")" --bind "$HOST" --save "" --appendonly no
        --repl-diskless-sync-delay 0 --dir "$(redis_dir "$1")"
        --logfile "$(redis_log_file "$1")" --pidfile "$(redis_pid_file "$1")")
}

redis_ping() {
    [[ $(timeout 2 redis-cli -h "$HOST" -p "$1" PING 2>/dev/null) == PONG ]]
}

# Starts the three redis-servers: MASTER_ID first, then the others as its replicas.
start_redis() {
    local id pid port deadline
    for id in "$MASTER_ID" $(printf '%s\n' "${REDIS_IDS[@]}" | grep -vx "$MASTER_ID"); do
        mkdir -p -- "$(redis_dir "$id")"
        # A replica's full sync leaves an RDB in its --dir, which redis-server would load at startup
        # even with --save "": every instance starts empty.
        rm -f -- "$(redis_dir "$id")"/*.rdb
        port=$(redis_port "$id")
        redis_args "$id"
        ((id == MASTER_ID)) || REDIS_ARGS+=(--replicaof "$HOST" "$(redis_port "$MASTER_ID")")
        printf '\n===== %s: starting redis-server %d =====\n' "$(date '+%F %T')" "$id" >>"$(redis_log_file "$id")"
        # setsid, as for the nodes: Ctrl-C reaches only this script, which stops them in order.
        setsid redis-server "${REDIS_ARGS[@]}" </dev/null >>"$(redis_log_file "$id")" 2>&1 &
        pid=$!
        REDIS_PID[$id]=$pid
        deadline=$((SECONDS + REDIS_WAIT_S))
        until redis_ping "$port"; do
            if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
                log "redis-server $id (port $port) did not start; see $(redis_log_file "$id")"
                tail -n 15 -- "$(redis_log_file "$id")" >&2 || true
                return 1
            fi
            sleep 0.1
        done
        if ((id == MASTER_ID)); then
            log "redis-server $id started: pid $pid, $HOST:$port, master"
        else
            log "redis-server $id started: pid $pid, $HOST:$port, replica of $HOST:$(redis_port "$MASTER_ID")"
        fi
    done
}

monitor_master() {
    local out try port
    port=$(redis_port "$MASTER_ID")
    if ((MONITORED == 0)); then
        for try in 1 2 3 4 5 6 7 8 9 10; do
            if out=$(ctl monitor "$MASTER_NAME" "$HOST" "$port" "$QUORUM" 2>&1); then
                log "raftinel monitors $MASTER_NAME at $HOST:$port (quorum $QUORUM)"
                break
            fi
            grep -q 'Duplicate master name' <<<"$out" && break
            ((try < 10)) || {
                log "ctl monitor failed: $out"
                return 1
            }
            sleep 1
        done
    fi
    # Replicas are discovered from the master's INFO and committed to the log. (On a restart the log
    # already knows them: the master's own INFO must then show both linked too.)
    local deadline=$((SECONDS + REPLICAS_WAIT_S)) n want=$((${#REDIS_IDS[@]} - 1))
    log "waiting up to ${REPLICAS_WAIT_S}s for raftinel to know both replicas..."
    while ((SECONDS < deadline)); do
        if timeout 2 redis-cli -h "$HOST" -p "$port" INFO replication 2>/dev/null |
            tr -d '\r' | grep -qx "connected_slaves:$want" &&
            out=$(ctl master "$MASTER_NAME" 2>&1) &&
            [[ $(awk 'NR == 1 { print $2 }' <<<"$out") == "$HOST:$port" ]]; then
            n=$(grep -c '^  replica ' <<<"$out" || true)
            if ((n == want)); then
                printf '%s\n' "$out"
                return 0
            fi
        fi
        sleep 0.5
    done
    log "both replicas of $HOST:$port not linked and known to raftinel within ${REPLICAS_WAIT_S}s; last answer:"
    printf '%s\n' "${out:-}" >&2
    return 1
}

print_help() {
    local c sentinels=() id mport mpid restart redis_lines=() role
    c="$(printf '%q' "$BIN") ctl --cluster $CLUSTER$(printf ' %q' "${CTL_TLS[@]}")"
    for id in "${NODE_IDS[@]}"; do
        sentinels+=("$(sentinel_addr "$id")")
    done
    mport=$(redis_port "$MASTER_ID")
    mpid=${REDIS_PID[$MASTER_ID]}
    redis_args "$MASTER_ID"
    restart="rm -f -- $(printf '%q' "$(redis_dir "$MASTER_ID")")/*.rdb; redis-server$(printf ' %q' "${REDIS_ARGS[@]}") --daemonize yes"
    for id in "${REDIS_IDS[@]}"; do
        role="replica of $HOST:$mport"
        ((id != MASTER_ID)) || role=master
        redis_lines+=("$(printf '%s:%s  pid %-7s %s' "$HOST" "$(redis_port "$id")" "${REDIS_PID[$id]}" "$role")")
    done
    cat <<EOF

raftinel local cluster is up (data: $LOCAL_DIR).
Nodes: gRPC     $CLUSTER
       Sentinel $(IFS=,; printf '%s' "${sentinels[*]}") (Sentinel clients: list these as your sentinels)
Redis: $(printf '%s\n       ' "${redis_lines[@]}")monitored by raftinel as $MASTER_NAME (quorum $QUORUM); logs and pid files in $LOCAL_DIR

Watch, from another terminal:
  $c watch
      topology events as they commit (+sdown, +odown, +switch-master, ...); Ctrl-C stops it
  $c master $MASTER_NAME
      the current master and its replicas (a failover in progress shows here too)
  $c status
  redis-cli -p $mport info replication
  redis-cli -p ${sentinels[0]##*:} sentinel get-master-addr-by-name $MASTER_NAME
      the Sentinel port: any Sentinel client works against these three nodes
  redis-cli -p ${sentinels[0]##*:} psubscribe '*'
      Sentinel's pub/sub events (+sdown, +switch-master, ...)
  curl -s http://$(http_addr 1)/primary/$MASTER_NAME   (and node 2, 3: 200 on the master's node only)
  curl -s http://$(http_addr 1)/metrics
      the HTTP API: health checks for HAProxy, readiness, Prometheus metrics (docs/http-api.md)

Trigger a failover: kill -9 the master (redis-server $MASTER_ID, $HOST:$mport):
  kill -9 $mpid
raftinel promotes a replica once the master has not answered for down-after-milliseconds (5000 ms
unless set, e.g. with \`ctl ... set $MASTER_NAME down-after-milliseconds 1000\`); \`ctl ... master $MASTER_NAME\`
then shows the new master. A second automatic failover of the same master waits failover-timeout
(180000 ms unless set) after the last one ends.
Bring the old master back, empty (raftinel folds it in as a replica; this script stops it on exit too):
  $restart

Logs: tail -f $LOCAL_DIR/node*.log $LOCAL_DIR/redis*.log   (set RUST_LOG=debug before starting for more)
Ctrl-C here stops the three nodes and the redis-servers; run again to restart them on the same Raft data
(--fresh to wipe it).
EOF
}

# Stops every redis-server of this run: the ones this script started and any instance a pid file
# names (one restarted by hand). SIGTERM, SIGKILL after ${STOP_WAIT_S}s.
stop_redis() {
    local id pid deadline pids=()
    for id in "${REDIS_IDS[@]}"; do
        pid=${REDIS_PID[$id]:-}
        if [[ -n $pid ]] && is_redis "$pid" "$(redis_port "$id")"; then
            pids+=("$pid")
        fi
        pid=$(redis_pid_from_file "$id")
        [[ -z $pid || " ${pids[*]} " == *" $pid "* ]] || pids+=("$pid")
    done
    if ((${#pids[@]} > 0)); then
        log "stopping redis-servers (SIGTERM): pids ${pids[*]}"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        deadline=$((SECONDS + STOP_WAIT_S))
        for pid in "${pids[@]}"; do
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                log "redis-server pid $pid still running after ${STOP_WAIT_S}s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    fi
    for id in "${!REDIS_PID[@]}"; do
        wait "${REDIS_PID[$id]}" 2>/dev/null || true
        unset 'REDIS_PID[$id]'
    done
    for id in "${REDIS_IDS[@]}"; do
        pid=$(redis_pid_from_file "$id")
        [[ -n $pid ]] || rm -f -- "$(redis_pid_file "$id")"
    done
}

# Logs (once) every redis-server this script started that has exited, e.g. a master killed to
# trigger a failover; not a reason to stop.
reap_redis() {
    local id st
    for id in "${!REDIS_PID[@]}"; do
        if ! kill -0 "${REDIS_PID[$id]}" 2>/dev/null; then
            st=0
            wait "${REDIS_PID[$id]}" 2>/dev/null || st=$?
            log "redis-server $id ($HOST:$(redis_port "$id"), pid ${REDIS_PID[$id]}) exited with status $st"
            unset 'REDIS_PID[$id]'
        fi
    done
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
    local rc=0
    # raftinel first, so it does not react to the redis-servers going away.
    stop_nodes || rc=1
    stop_redis
    exit "$rc"
}

on_exit() {
    # Any unexpected exit (set -e, a failed check) must not leave nodes or redis-servers running.
    ((${#NODE_PID[@]} == 0)) || stop_nodes || true
    stop_redis
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
        reap_redis
        sleep 1 &
        wait $! || true
    done
}

main() {
    parse_args "$@"
    setup_env
    check_not_running
    ensure_redis
    build
    ((FRESH == 0)) || wipe
    check_base_port
    check_ports
    make_certs
    write_configs

    trap on_exit EXIT
    trap on_signal INT TERM HUP
    start_nodes
    if ! wait_for_leader; then
        show_logs
        stop_nodes || true
        exit 1
    fi
    if ! find_master || ! start_redis || ! monitor_master; then
        show_logs
        exit 1 # on_exit stops the nodes and the redis-servers
    fi
    print_help
    supervise || {
        stop_nodes || true
        stop_redis
        exit 1
    }
}

main "$@"
