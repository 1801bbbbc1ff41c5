#!/usr/bin/env python3
"""Measures `octoflow serve` on SQLite with wrk as the load generator (see BENCHMARKS.md).

1. time to ready and idle memory of a fresh server;
2. sustained: wrk POSTs one-step runs for DURATION seconds while the workers run them;
   runs/s accepted, runs/s completed, p50/p99 from request to `succeeded`;
3. drain: RUNS runs queued on an API-only node (`--workers 0`), then a node with workers
   starts and runs them all; runs/s.

Every figure is for one node with WORKERS runs at once (default 64).

Usage: bench/serve/run.py [--duration 10] [--runs 20000] [--connections 32] [--workers 64]
                         [--synchronous normal|full]
Needs: wrk (Debian package `wrk`), a release build (`cargo build --release -p octoflow`;
OCTOFLOW_BIN names another binary).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import functools

print = functools.partial(print, flush=True)  # noqa: A001 - progress as it comes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("OCTOFLOW_BIN", os.path.join(ROOT, "target", "release", "octoflow"))
LUA = os.path.join(ROOT, "bench", "serve", "post.lua")
FLOW = "steps:\n  - name: one\n    set_fact: { value: 1 }\n"


def start(data, workers):
    env = dict(os.environ, OCTOFLOW_LOG="error")
    proc = subprocess.Popen(
        [BIN, "serve", "--data", data, "--listen", "127.0.0.1:0", "--workers", str(workers)],
        stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    m = re.search(r"listening on (\S+) .*ready in (\d+) ms", line)
    if not m:
        sys.exit(f"serve did not start: {line}")
    return proc, m.group(1), int(m.group(2))


def get(url):
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read())


def count(url, status=None):
    query = f"status={status}&" if status else ""
    return get(f"{url}/api/v1/runs?{query}per_page=1")["total"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def wrk(url, seconds, connections, runs=0):
    env = dict(os.environ, RUNS=str(runs), THREADS="2")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", LUA,
         f"{url}/api/v1/flows/one/runs"],
        capture_output=True, text=True, env=env, check=True).stdout
    return out


def wait_all_done(url, expected, timeout=600):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if count(url, "succeeded") >= expected:
            return time.monotonic() - start
        time.sleep(0.05)
    sys.exit("runs did not finish in time")


def latencies(url):
    out, page = [], 1
    while True:
        p = get(f"{url}/api/v1/runs?status=succeeded&per_page=500&page={page}")
        for r in p["items"]:
            out.append(parse(r["finished_at"]) - parse(r["created_at"]))
        if page * 500 >= p["total"]:
            return sorted(out)
        page += 1


def parse(ts):
    from datetime import datetime
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--synchronous", choices=["normal", "full"], default="normal",
                    help="store.synchronous of the node's config")
    ap.add_argument("--workers", type=int, default=64,
                    help="runs at once per node (slots, not threads: a one-step run mostly waits)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as data:
        os.makedirs(f"{data}/flows")
        with open(f"{data}/flows/one.yml", "w") as f:
            f.write(FLOW)
        with open(f"{data}/config.yml", "w") as f:
            f.write(f"store: {{ synchronous: {args.synchronous} }}\n")

        # 1. Ready time and idle memory.
        proc, url, ready = start(data, args.workers)
        time.sleep(1)
        print(f"time to ready: {ready} ms; idle RSS: {rss_kb(proc.pid) / 1024:.1f} MB")

        # 2. Sustained.
        out = wrk(url, args.duration, args.connections)
        accepted = count(url)
        drain = wait_all_done(url, accepted)
        lat = latencies(url)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        p99 = re.search(r"99%\s+(\S+)", out).group(1)
        print(f"sustained: {accepted} runs accepted in {args.duration} s ({rps} requests/s, "
              f"accept p99 {p99}); all done {drain:.2f} s after the load stopped; "
              f"completed {accepted / (args.duration + drain):.0f} runs/s")
        print(f"request to succeeded: p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms; "
              f"RSS after: {rss_kb(proc.pid) / 1024:.1f} MB")
        stop(proc)

    with tempfile.TemporaryDirectory() as data:
        os.makedirs(f"{data}/flows")
        with open(f"{data}/flows/one.yml", "w") as f:
            f.write(FLOW)
        with open(f"{data}/config.yml", "w") as f:
            f.write(f"store: {{ synchronous: {args.synchronous} }}\n")
        # 3. Drain of queued runs.
        proc, url, _ = start(data, 0)
        wrk(url, 120, args.connections, runs=args.runs)
        queued = count(url, "queued")
        stop(proc)
        proc, url, _ = start(data, args.workers)
        t = wait_all_done(url, queued)
        print(f"drain: {queued} queued runs done in {t:.2f} s: {queued / t:.0f} runs/s")
        stop(proc)


if __name__ == "__main__":
    main()
