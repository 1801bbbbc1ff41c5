#!/usr/bin/env python3
"""Webhook runs/s on one and two nodes sharing one PostgreSQL database, and on one node on
SQLite, in one run (see BENCHMARKS.md, "Many nodes").

Each node is an `octoflow serve` on its own port with a `wait: true` hook running a one-step
flow; wrk POSTs to every node at once (the load split evenly, no proxy in front), each
answer sent when its run has ended. Requests/s is the sum over the nodes; afterwards the
store must hold one succeeded run per answered request.

Usage: bench/scale/hooks.py [--seconds 10] [--connections 32] [--workers 64] [--rounds 1]
Needs: wrk (Debian package `wrk`), a release build (`cargo build --release -p octoflow`;
OCTOFLOW_BIN names another binary), PostgreSQL at OCTOFLOW_TEST_POSTGRES_URL, `psql`.
"""

import argparse
import os
import re
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import drain
from drain import ADMIN, ROOT, print, psql, serve, stop, succeeded

FLOW = """name: one
triggers:
  - webhook: { path: one, auth: none, wait: true }
steps:
  - name: one
    set_fact: { value: 1 }
"""
LUA = os.path.join(ROOT, "bench", "serve", "post.lua")


def data_dir(root, name):
    return drain.data_dir(root, name, FLOW)


def wrk(url, seconds, connections):
    """Requests answered, requests/s, p99 latency in ms, and non-2xx answers."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", LUA,
         f"{url}/hooks/one"], check=True, capture_output=True, text=True).stdout
    answered = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    p99_ms = float(p99[:-2]) if p99.endswith("ms") else float(p99[:-2]) / 1000 \
        if p99.endswith("us") else float(p99[:-1]) * 1000
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return answered, rate, p99_ms, int(errors.group(1)) if errors else 0


def load(urls, seconds, connections):
    share = max(1, connections // len(urls))
    with ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(lambda u: wrk(u, seconds, share), urls))
    answered = sum(r[0] for r in results)
    rate = sum(r[1] for r in results)
    p99 = max(r[2] for r in results)
    errors = sum(r[3] for r in results)
    return answered, rate, p99, errors


def check_recorded(url, answered, errors):
    # wrk counts a request cut off at its deadline as unanswered; allow for those in flight.
    deadline = time.monotonic() + 30
    while (done := succeeded(url)) < answered - errors and time.monotonic() < deadline:
        time.sleep(0.1)
    if done < answered - errors:
        raise SystemExit(f"{answered - errors} answered, only {done} runs succeeded")
    return done


def series(database, nodes, seconds, connections, workers, root):
    started = [serve(data_dir(root, f"n{i}"), database, workers) for i in range(nodes)]
    urls = [url for _, url in started]
    try:
        answered, rate, p99, errors = load(urls, seconds, connections)
        recorded = check_recorded(urls[0], answered, errors)
    finally:
        for proc, _ in started:
            stop(proc)
    return rate, p99, errors, answered, recorded


def report(label, result):
    rate, p99, errors, answered, recorded = result
    print(f"{label}: {rate:.0f} requests/s, p99 {p99:.1f} ms, {errors} errors; "
          f"{answered} answered, {recorded} runs succeeded")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32, help="in all, split over the nodes")
    ap.add_argument("--workers", type=int, default=64, help="runs at once per node")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    common = (args.seconds, args.connections, args.workers)
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as root:
            data = os.path.join(root, "sqlite")
            result = series(f"sqlite://{data}/n0/octoflow.db", 1, *common, data)
        report("sqlite, 1 node", result)
        for nodes in (1, 2):
            name = f"oft_bench_{uuid.uuid4().hex[:12]}"
            psql(f"CREATE DATABASE {name}")
            try:
                with tempfile.TemporaryDirectory() as root:
                    database = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
                    result = series(database, nodes, *common, root)
                report(f"postgres, {nodes} node(s)", result)
            finally:
                psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
