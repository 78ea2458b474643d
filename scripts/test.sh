#!/usr/bin/env bash
# The whole test suite, with the set-up a fresh Debian 12 machine with only Rust needs.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || need+=(procps)   # SIGTERM in the cluster tests
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)       # sled/ring build C
command -v redis-server >/dev/null 2>&1 || need+=(redis-server) # the Redis that raftinel watches
command -v iptables >/dev/null 2>&1 || need+=(iptables)         # cut one node off from a master
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)        # run that node as another user
command -v ip >/dev/null 2>&1 || need+=(iproute2)               # the namespace lab (deploy/lab)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)           # deploy/haproxy on /primary (tests/http.rs)
# redis-py runs from a venv (tests/sentinel_clients.rs): Debian's python3 needs python3-venv
# (which brings ensurepip) before `python3 -m venv` works.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3 python3-venv python3-pip)
# ioredis and node-redis v5 (tests/sentinel_clients.rs) need Node.js 18 or later and npm.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: please install: ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# The package starts a system redis on 6379; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server haproxy >/dev/null 2>&1 || true; fi

# The venv with redis-py 8 and valkey-py 6 for the client tests; they find it through
# RAFTINEL_PYTHON.
venv="$(realpath -m "${CARGO_TARGET_DIR:-target}")/py-venv"
has_clients='import redis, valkey, sys; v = tuple(int(x) for x in redis.__version__.split(".")[:2]); sys.exit(not (8, 1) <= v < (9, 0))'
if ! "$venv/bin/python" -c "$has_clients" >/dev/null 2>&1; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'redis>=8.1,<9' 'valkey>=6.1,<7'
fi
export RAFTINEL_PYTHON="$venv/bin/python"

# ioredis 5 and node-redis 5 for the client tests; they find them through RAFTINEL_NODE_MODULES.
nodedir="$(realpath -m "${CARGO_TARGET_DIR:-target}")/node-clients"
if [ ! -f "$nodedir/node_modules/ioredis/package.json" ] || [ ! -f "$nodedir/node_modules/redis/package.json" ]; then
  mkdir -p "$nodedir"
  npm install --silent --no-audit --no-fund --prefix "$nodedir" 'ioredis@5' 'redis@5'
fi
export RAFTINEL_NODE_MODULES="$nodedir/node_modules"

# Cluster tests serialize themselves; unit tests run in parallel on the two cores.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Build first, then let the kernel write the build's gigabytes back: otherwise the first cluster
# tests' fsyncs queue behind that writeback, and Raft RPCs (100 ms heartbeat timeout) time out.
cargo test --locked --lib --bins --tests --no-run
# The nemesis runs optimized (issue 12): a debug raftinel under seeded faults measures the debug build.
cargo test --locked --release --test nemesis --no-run
# The Debian package, which tests/package.rs installs and purges (RAFTINEL_DEB names it).
cargo deb --version >/dev/null 2>&1 || cargo install --locked --quiet cargo-deb
RAFTINEL_DEB="$(cargo deb --locked --quiet --strip | tail -n 1)"
export RAFTINEL_DEB
sync
cargo test --locked --no-fail-fast --lib --bins --tests -- --test-threads=2 \
  --skip nemesis_runs_keep_every_promise 2>&1 | tee "$log" || status=$?
# Short nemesis runs with fixed seeds in the namespace lab (root), after everything else.
cargo test --locked --release --test nemesis -- --test-threads=1 2>&1 | tee -a "$log" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
