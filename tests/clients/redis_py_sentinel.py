"""redis-py's Sentinel support against raftinel's Sentinel-compatible port.

Run by tests/sentinel_clients.rs with the venv that scripts/test.sh builds (redis-py 8, which
opens sentinel connections with HELLO 3 and discovers the master with SENTINEL MASTERS).

    redis_py_sentinel.py write    --sentinels H:P,H:P,... --service NAME --duration SECONDS [--sentinel-ca PEM] [--lib valkey]
    redis_py_sentinel.py discover --sentinels H:P,H:P,... --service NAME

`write` runs `SET key:i i` in a loop (2 ms apart) through `Sentinel.master_for(...)` for SECONDS, catching
connection, read-only and timeout errors and retrying after a short sleep. It prints `ready`
after its first acknowledged write (so that the caller knows when to kill the master), then
one JSON line: ok and error counts, the longest error burst in ms (from the last acknowledged
write before an error to the next acknowledged write), the master address seen last, the
acknowledged writes per master address, and the index of the last acknowledged write. With
`--sentinel-ca`, the sentinel connections use TLS (`ssl=True`, `ssl_ca_certs`), the master's do not.

`discover` times `Sentinel.discover_master` three ways and prints one JSON line with the master
address and the milliseconds each took:
- `ms_default`: a Sentinel with redis-py's default retry policy (10 retries with exponential
  backoff of up to 1 s, on connection errors): a sentinel that refuses connections, first in
  the list, costs about 4 s of client-side backoff before the next one is asked;
- `ms_default_again`: the same Sentinel again; discover_master moved the sentinel that answered
  to the front of its list, so this does not touch the refusing one;
- `ms_no_retry`: a fresh Sentinel whose sentinel connections do not retry
  (`sentinel_kwargs={"retry": Retry(NoBackoff(), 0)}`), which shows what the server costs.

With `--lib valkey` both run on valkey-py instead (its modules mirror redis-py's).
"""

import argparse
import importlib
import json
import sys
import time


def library():
    """`--lib valkey` runs the same code with valkey-py, whose modules mirror redis-py's."""
    if "--lib" in sys.argv[:-1]:
        return sys.argv[sys.argv.index("--lib") + 1]
    return "redis"


LIB = library()
redis = importlib.import_module(LIB)
NoBackoff = importlib.import_module(f"{LIB}.backoff").NoBackoff
_errors = importlib.import_module(f"{LIB}.exceptions")
ConnectionError, ReadOnlyError, TimeoutError = (
    _errors.ConnectionError,
    _errors.ReadOnlyError,
    _errors.TimeoutError,
)
Retry = importlib.import_module(f"{LIB}.retry").Retry
Sentinel = importlib.import_module(f"{LIB}.sentinel").Sentinel

TIMEOUT = 0.5  # seconds, for sentinel and master connections alike
RETRY_SLEEP = 0.05
# Between acknowledged writes, so that the loop does not starve the cluster of CPU.
WRITE_SLEEP = 0.002


def sentinels(arg):
    out = []
    for hp in arg.split(","):
        host, port = hp.rsplit(":", 1)
        out.append((host, int(port)))
    return out


def write(args):
    sentinel_kwargs = None
    if args.sentinel_ca:
        sentinel_kwargs = {
            "socket_timeout": TIMEOUT,
            "ssl": True,
            "ssl_ca_certs": args.sentinel_ca,
        }
    s = Sentinel(
        sentinels(args.sentinels),
        socket_timeout=TIMEOUT,
        sentinel_kwargs=sentinel_kwargs,
    )
    master = s.master_for(args.service, socket_timeout=TIMEOUT)
    ok = errors = 0
    attempts = 0
    last_ok = None  # time of the last acknowledged write
    burst_from = None  # time of the last acknowledged write before the current errors
    longest_burst = 0.0
    error_kinds = {}
    master_seen = None
    ok_per_master = {}
    last_ok_key = None
    ready = False
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        i = attempts
        attempts += 1
        try:
            master.set(f"key:{i}", i)
        except (ConnectionError, ReadOnlyError, TimeoutError) as e:
            errors += 1
            kind = type(e).__name__
            error_kinds[kind] = error_kinds.get(kind, 0) + 1
            if burst_from is None:
                burst_from = last_ok if last_ok is not None else time.monotonic()
            time.sleep(RETRY_SLEEP)
            continue
        now = time.monotonic()
        ok += 1
        last_ok = now
        last_ok_key = i
        if burst_from is not None:
            longest_burst = max(longest_burst, now - burst_from)
            burst_from = None
        addr = master.connection_pool.master_address
        if addr is not None:
            master_seen = f"{addr[0]}:{addr[1]}"
            ok_per_master[master_seen] = ok_per_master.get(master_seen, 0) + 1
        if not ready:
            print("ready", flush=True)
            ready = True
        time.sleep(WRITE_SLEEP)
    if burst_from is not None:
        # Still failing at the end: the burst lasts until now.
        longest_burst = max(longest_burst, time.monotonic() - burst_from)
    print(
        json.dumps(
            {
                "ok": ok,
                "errors": errors,
                "attempts": attempts,
                "longest_error_burst_ms": round(longest_burst * 1000),
                "still_failing": burst_from is not None,
                "master_seen_last": master_seen,
                "ok_per_master": ok_per_master,
                "last_ok_key": last_ok_key,
                "error_kinds": error_kinds,
                "library": f"{LIB} {redis.__version__}",
            }
        ),
        flush=True,
    )


def timed_discover(s, service):
    start = time.monotonic()
    ip, port = s.discover_master(service)
    return f"{ip}:{port}", round((time.monotonic() - start) * 1000, 1)


def discover(args):
    addrs = sentinels(args.sentinels)
    default = Sentinel(addrs, socket_timeout=TIMEOUT)
    master, ms_default = timed_discover(default, args.service)
    again, ms_again = timed_discover(default, args.service)
    no_retry = Sentinel(
        addrs,
        sentinel_kwargs={"socket_timeout": TIMEOUT, "retry": Retry(NoBackoff(), 0)},
        socket_timeout=TIMEOUT,
    )
    fast, ms_no_retry = timed_discover(no_retry, args.service)
    print(
        json.dumps(
            {
                "master": master,
                "ms_default": ms_default,
                "master_again": again,
                "ms_default_again": ms_again,
                "master_no_retry": fast,
                "ms_no_retry": ms_no_retry,
            }
        ),
        flush=True,
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["write", "discover"])
    p.add_argument("--sentinels", required=True)
    p.add_argument("--service", default="mymaster")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--sentinel-ca", default=None)
    p.add_argument("--lib", choices=["redis", "valkey"], default="redis")
    args = p.parse_args()
    if args.mode == "write":
        write(args)
    else:
        discover(args)


if __name__ == "__main__":
    sys.exit(main())
