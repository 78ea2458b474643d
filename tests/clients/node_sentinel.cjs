// ioredis's and node-redis v5's Sentinel clients against raftinel's Sentinel-compatible port.
//
// Run by tests/sentinel_clients.rs with the modules scripts/test.sh installs (RAFTINEL_NODE_MODULES:
// ioredis 5 and redis 5, whose Sentinel client reads SENTINEL MASTER / REPLICAS / SENTINELS and
// follows the topology through pub/sub).
//
//     node node_sentinel.cjs write --client ioredis|node-redis --sentinels H:P,H:P,... --service NAME --duration SECONDS
//
// `write` runs `SET key:i i` in a loop (2 ms apart) through the client's Sentinel support for
// SECONDS; an error (or no answer within 2 s) is counted and the loop goes on after 50 ms. It
// prints `ready` after its first acknowledged write, then one JSON line in the shape of
// redis_py_sentinel.py's: ok and error counts, the longest error burst in ms, the master address
// seen last, the acknowledged writes per master address, and the index of the last acknowledged
// write.

"use strict";

const path = require("node:path");

const modules = process.env.RAFTINEL_NODE_MODULES;
if (!modules) {
  console.error("RAFTINEL_NODE_MODULES is not set: run scripts/test.sh");
  process.exit(2);
}

const STEP_TIMEOUT_MS = 2000;
const RETRY_SLEEP_MS = 50;
const WRITE_SLEEP_MS = 2;

function args() {
  const out = { mode: process.argv[2] };
  for (let i = 3; i < process.argv.length; i += 2) {
    out[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
  }
  return out;
}

function sentinels(list) {
  return list.split(",").map((hp) => {
    const at = hp.lastIndexOf(":");
    return { host: hp.slice(0, at), port: Number(hp.slice(at + 1)) };
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function within(ms, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A client with `set(key, value)`, `master()` (the address it writes to) and `close()`.
async function ioredis(a) {
  const Redis = require(path.join(modules, "ioredis"));
  const r = new Redis({
    sentinels: sentinels(a.sentinels),
    name: a.service,
    connectTimeout: 500,
    commandTimeout: 500,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => RETRY_SLEEP_MS,
    sentinelRetryStrategy: () => RETRY_SLEEP_MS,
  });
  r.on("error", () => {});
  return {
    set: (k, v) => r.set(k, v),
    master: () => (r.stream ? `${r.stream.remoteAddress}:${r.stream.remotePort}` : null),
    close: () => r.disconnect(),
  };
}

async function nodeRedis(a) {
  const { createSentinel } = require(path.join(modules, "redis"));
  const s = createSentinel({
    name: a.service,
    sentinelRootNodes: sentinels(a.sentinels),
  });
  s.on("error", () => {});
  const trace = process.env.NODE_SENTINEL_TRACE;
  if (trace) {
    const lines = { push: (m) => require("node:fs").appendFileSync(trace, `${Date.now()} ${m}\n`) };
    s.setTracer(lines);
  }
  await within(15000, s.connect());
  return {
    set: (k, v) => s.set(k, v),
    master: () => {
      const m = s.getMasterNode();
      return m ? `${m.host}:${m.port}` : null;
    },
    close: () => s.close(),
  };
}

async function write(a) {
  const client = a.client === "ioredis" ? await ioredis(a) : await nodeRedis(a);
  let ok = 0;
  let errors = 0;
  let attempts = 0;
  let lastOk = null;
  let burstFrom = null;
  let longestBurst = 0;
  const errorKinds = {};
  let masterSeen = null;
  const okPerMaster = {};
  let lastOkKey = null;
  let ready = false;
  const end = Date.now() + Number(a.duration) * 1000;
  while (Date.now() < end) {
    const i = attempts;
    attempts += 1;
    try {
      await within(STEP_TIMEOUT_MS, client.set(`key:${i}`, String(i)));
    } catch (e) {
      errors += 1;
      const kind = (e && (e.name || e.constructor.name)) || "Error";
      errorKinds[kind] = (errorKinds[kind] || 0) + 1;
      if (burstFrom === null) {
        burstFrom = lastOk !== null ? lastOk : Date.now();
      }
      await sleep(RETRY_SLEEP_MS);
      continue;
    }
    const now = Date.now();
    ok += 1;
    lastOk = now;
    lastOkKey = i;
    if (burstFrom !== null) {
      longestBurst = Math.max(longestBurst, now - burstFrom);
      burstFrom = null;
    }
    const addr = client.master();
    if (addr) {
      masterSeen = addr;
      okPerMaster[addr] = (okPerMaster[addr] || 0) + 1;
    }
    if (!ready) {
      console.log("ready");
      ready = true;
    }
    await sleep(WRITE_SLEEP_MS);
  }
  if (burstFrom !== null) {
    longestBurst = Math.max(longestBurst, Date.now() - burstFrom);
  }
  console.log(
    JSON.stringify({
      ok,
      errors,
      attempts,
      longest_error_burst_ms: longestBurst,
      still_failing: burstFrom !== null,
      master_seen_last: masterSeen,
      ok_per_master: okPerMaster,
      last_ok_key: lastOkKey,
      error_kinds: errorKinds,
    }),
  );
  await within(5000, Promise.resolve(client.close())).catch(() => {});
  process.exit(0);
}

const a = args();
if (a.mode !== "write" || !["ioredis", "node-redis"].includes(a.client)) {
  console.error("usage: node_sentinel.cjs write --client ioredis|node-redis --sentinels H:P,... --service NAME --duration SECONDS");
  process.exit(2);
}
write(a).catch((e) => {
  console.error(e);
  process.exit(1);
});
