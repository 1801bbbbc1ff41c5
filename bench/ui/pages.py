#!/usr/bin/env python3
"""Server time of the web UI's pages over a store of many runs, and what each page weighs
with its assets (see BENCHMARKS.md, "Web UI").

1. an `octoflow serve` on SQLite with no workers takes RUNS runs through the API (they stay
   queued: the store holds RUNS runs);
2. each page is fetched ROUNDS times, one request at a time on loopback; p50 and p99 of the
   time from sending the request to reading the whole answer (the server's time plus a
   loopback round trip: an upper bound of the server's);
3. the weight: the page's HTML plus its stylesheet and script.

Usage: bench/ui/pages.py [--runs 100000] [--rounds 200]
Needs: a release build (`cargo build --release -p octoflow`; OCTOFLOW_BIN names another binary).
"""

import argparse
import concurrent.futures
import functools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

print = functools.partial(print, flush=True)  # noqa: A001 - progress as it comes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("OCTOFLOW_BIN", os.path.join(ROOT, "target", "release", "octoflow"))
FLOW = """name: one
description: One step
params: { n: { type: integer, default: 1 } }
triggers:
  - schedule: { cron: "0 2 * * *" }
steps:
  - name: one
    set_fact: { value: 1 }
"""
PAGES = [
    ("flows", "/ui/"),
    ("runs", "/ui/runs"),
    ("runs, filtered, page 100", "/ui/runs?flow=one&status=queued&page=100"),
    ("a run", None),
    ("a flow", "/ui/flows/one"),
]


def fetch(url):
    with urllib.request.urlopen(url) as r:
        return r.read()


def queue(url, runs):
    body = b'{"params": {"n": 2}}'

    def post(_):
        req = urllib.request.Request(f"{url}/api/v1/flows/one/runs", data=body, method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return r.read()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        last = list(pool.map(post, range(runs)))[-1]
    return re.search(rb'"id":"([^"]+)"', last).group(1).decode()


def quantile(times, q):
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as data:
        os.makedirs(os.path.join(data, "flows"))
        with open(os.path.join(data, "flows", "one.yml"), "w") as f:
            f.write(FLOW)
        env = dict(os.environ, OCTOFLOW_LOG="error")
        proc = subprocess.Popen([BIN, "serve", "--data", data, "--listen", "127.0.0.1:0",
                                 "--workers", "0"], stderr=subprocess.PIPE, text=True, env=env)
        line = proc.stderr.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            sys.exit(f"serve did not start: {line}")
        url = m.group(1)
        try:
            print(f"queueing {args.runs} runs")
            last = queue(url, args.runs)
            home = fetch(f"{url}/ui/")
            assets = [re.search(pattern, home).group(1).decode().replace("&#x2f;", "/")
                      for pattern in (rb'href="([^"]+\.css)"', rb'src="([^"]+\.js)"')]
            css_bytes = sum(len(fetch(url + asset)) for asset in assets)
            print("| page | p50 | p99 | HTML | with stylesheet and script |")
            print("| --- | --- | --- | --- | --- |")
            for name, path in PAGES:
                path = path or f"/ui/runs/{last}"
                times = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    html = fetch(url + path)
                    times.append(time.perf_counter() - started)
                print(f"| {name} | {quantile(times, 0.5):.2f} ms | {quantile(times, 0.99):.2f} ms "
                      f"| {len(html):,} B | {len(html) + css_bytes:,} B |")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
