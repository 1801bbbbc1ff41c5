#!/usr/bin/env python3
"""Drain of queued runs by 1, 2 and 3 nodes on one PostgreSQL database, and by one node on
SQLite, in one run (see BENCHMARKS.md, "Many nodes").

For each series: RUNS one-step runs are queued through an API-only node (`--workers 0`), then
the draining nodes start — on PostgreSQL one `octoflow serve` and `octoflow worker` nodes,
each with its own data directory; one `octoflow serve` on the SQLite file — and the time
until every run has succeeded gives runs/s. The first PostgreSQL node's `/metrics` gives
the claim latency (`octoflow_claim_seconds`, a claim that found work).

Usage: bench/scale/drain.py [--runs 20000] [--workers 32] [--nodes 1,2,3] [--rounds 1]
Needs: a release build (`cargo build --release -p octoflow`; OCTOFLOW_BIN names another
binary), PostgreSQL at OCTOFLOW_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test;
a scratch database is made and dropped per series), `psql`.
"""

import argparse
import concurrent.futures
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

print = functools.partial(print, flush=True)  # noqa: A001 - progress as it comes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("OCTOFLOW_BIN", os.path.join(ROOT, "target", "release", "octoflow"))
ADMIN = os.environ.get("OCTOFLOW_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
FLOW = "steps:\n  - name: one\n    set_fact: { value: 1 }\n"


def data_dir(root, name, flow=FLOW):
    data = os.path.join(root, name)
    os.makedirs(os.path.join(data, "flows"))
    with open(os.path.join(data, "flows", "one.yml"), "w") as f:
        f.write(flow)
    return data


def spawn(args, ready):
    env = dict(os.environ, OCTOFLOW_LOG="error")
    proc = subprocess.Popen([BIN, *args], stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    if ready not in line:
        sys.exit(f"octoflow did not start: {line}")
    return proc, line


def serve(data, database, workers):
    proc, line = spawn(["serve", "--data", data, "--database", database,
                        "--listen", "127.0.0.1:0", "--workers", str(workers)], "listening on")
    return proc, re.search(r"listening on (\S+)", line).group(1)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def get(url):
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read())


def succeeded(url):
    return get(f"{url}/api/v1/runs?status=succeeded&per_page=1")["total"]


def queue(url, runs):
    def post(_):
        req = urllib.request.Request(f"{url}/api/v1/flows/one/runs", data=b"{}", method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return r.status
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(post, range(runs)))
    assert all(c == 201 for c in codes), "a run was not accepted"


def wait_done(url, runs, timeout=900):
    start = time.monotonic()
    while succeeded(url) < runs:
        if time.monotonic() - start > timeout:
            sys.exit("the runs did not finish in time")
        time.sleep(0.05)
    return time.monotonic() - start


def psql(sql):
    subprocess.run(["psql", ADMIN, "-q", "-c", sql], check=True, capture_output=True)


def claim_quantiles(url):
    """`octoflow_claim_seconds` p50 and p99 from a node's /metrics histogram, in ms."""
    with urllib.request.urlopen(f"{url}/metrics") as r:
        text = r.read().decode()
    buckets = sorted(
        (float("inf") if le == "+Inf" else float(le), float(count))
        for le, count in re.findall(
            r'^octoflow_claim_seconds_bucket\{le="([^"]+)"\} (\S+)', text, re.M))
    return histogram_quantile(0.5, buckets) * 1000, histogram_quantile(0.99, buckets) * 1000


def histogram_quantile(q, buckets):
    """The quantile `q` of a histogram's (upper bound, cumulative count) buckets, linear
    within the bucket it falls in, as Prometheus' `histogram_quantile` reads it."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank = q * total
    low, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return low
            return low + (bound - low) * (rank - below) / (count - below) if count > below else bound
        low, below = bound, count
    return float("nan")


def postgres_series(runs, workers, nodes):
    name = f"oft_bench_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE DATABASE {name}")
    database = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        with tempfile.TemporaryDirectory() as root:
            api, url = serve(data_dir(root, "api"), database, 0)
            queue(url, runs)
            # The first drainer is a `serve` node, for its /metrics; the others are workers.
            first, first_url = serve(data_dir(root, "w0"), database, workers)
            drainers = [first]
            for i in range(1, nodes):
                proc, _ = spawn(["worker", "--data", data_dir(root, f"w{i}"), "--database",
                                 database, "--workers", str(workers)], "running queued runs")
                drainers.append(proc)
            took = wait_done(url, runs)
            claims = claim_quantiles(first_url)
            for proc in drainers:
                stop(proc)
            stop(api)
            return took, claims
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sqlite_series(runs, workers):
    with tempfile.TemporaryDirectory() as root:
        data = data_dir(root, "node")
        database = f"sqlite://{data}/octoflow.db"
        api, url = serve(data, database, 0)
        queue(url, runs)
        stop(api)
        node, url = serve(data, database, workers)
        took = wait_done(url, runs)
        stop(node)
        return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=32, help="runs at once per node")
    ap.add_argument("--nodes", default="1,2,3", help="PostgreSQL series: draining nodes")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    for _ in range(args.rounds):
        took = sqlite_series(args.runs, args.workers)
        print(f"sqlite, 1 node: {args.runs} runs in {took:.2f} s: {args.runs / took:.0f} runs/s")
        for nodes in [int(n) for n in args.nodes.split(",")]:
            took, (p50, p99) = postgres_series(args.runs, args.workers, nodes)
            print(f"postgres, {nodes} node(s): {args.runs} runs in {took:.2f} s: "
                  f"{args.runs / took:.0f} runs/s; claims of the first node p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
