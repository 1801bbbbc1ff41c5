#!/usr/bin/env python3
"""Webhook runs through `octoflow serve`, as the peer comparison makes them (BENCHMARKS.md).

The flow (`b4.yml`): a `wait: true` hook whose run transforms the posted JSON (`body.json`,
~200 B) with one `jq` step and answers with the result; every run and step is recorded in
the store (SQLite). wrk is the load generator, on the same cores.

  throughput (default): wrk at each of --connections for --seconds, --reps times; prints
      requests/s, p50/p99, and the server's CPU time per request (from /proc);
  --soak N: N runs in rounds of about 100,000 at --soak-connections; prints the server's
      RSS after each round and again after it has been idle for a few seconds.

Usage: bench/webhook/run.py [--connections 2,32] [--seconds 15] [--reps 3]
       bench/webhook/run.py --soak 1000000
Needs wrk (Debian package `wrk`) and a release build (`cargo build --release -p octoflow`);
OCTOFLOW_BIN names another binary (a `--profile profiling` build, say).
"""

import argparse
import functools
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

print = functools.partial(print, flush=True)  # noqa: A001 - progress as it comes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("OCTOFLOW_BIN", os.path.join(ROOT, "target", "release", "octoflow"))
TICKS = os.sysconf("SC_CLK_TCK")


def start(data):
    os.makedirs(os.path.join(data, "flows"), exist_ok=True)
    shutil.copy(os.path.join(HERE, "b4.yml"), os.path.join(data, "flows", "b4.yml"))
    env = dict(os.environ, OCTOFLOW_LOG="error")
    proc = subprocess.Popen(
        [BIN, "serve", "--data", data, "--listen", "127.0.0.1:0", "--workers", "64"],
        stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    found = re.search(r"listening on (\S+) .*ready in (\d+) ms", line)
    if not found:
        sys.exit(f"serve did not start: {line}")
    return proc, found.group(1)


def post(url):
    with open(os.path.join(HERE, "body.json"), "rb") as body:
        request = urllib.request.Request(
            url, data=body.read(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return answer.status, answer.read()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(url, connections, seconds):
    threads = 1 if connections <= 2 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-s", os.path.join(HERE, "post.lua"), url],
        capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK "))
    return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:])}


def recorded(data):
    db = sqlite3.connect(os.path.join(data, "octoflow.db"))
    try:
        # The runs wrk left waiting when it stopped end first (10 s at most); a waited run
        # of this flow is written only at its end, so wait until the count stops moving.
        deadline = time.monotonic() + 10
        counts, last = None, None
        while time.monotonic() < deadline:
            counts = db.execute(
                "select (select count(*) from runs), (select count(*) from step_runs), "
                "(select count(*) from runs where status in ('queued', 'running'))").fetchone()
            if counts == last and counts[2] == 0:
                break
            last = counts
            time.sleep(0.2)
        return counts[0], counts[1]
    finally:
        db.close()


def throughput(args, data, proc, url):
    print(f"{'conns':>5} {'rep':>3} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms/req':>10} {'errors':>6}")
    for connections in args.connections:
        for rep in range(1, args.reps + 1):
            before = cpu_seconds(proc.pid)
            got = wrk(url, connections, args.seconds)
            cpu = (cpu_seconds(proc.pid) - before) / max(got["requests"], 1) * 1000
            print(f"{connections:>5} {rep:>3} {got['rps']:>9.0f} {got['p50_ms']:>7.2f} "
                  f"{got['p99_ms']:>7.2f} {cpu:>10.3f} {int(got['errors'] + got['non2xx']):>6}")
    runs, steps = recorded(data)
    print(f"recorded: {runs} runs, {steps} steps")


def soak(args, data, proc, url):
    """Rounds of about 100,000 runs each (wrk runs for a duration, so each round lasts what
    the last round's rate needs for 100,000)."""
    print(f"{'runs':>9} {'req/s':>7} {'RSS MiB':>8} {'idle RSS MiB':>12}")
    done, rate = 0, 0.0
    while done < args.soak:
        seconds = 10 if rate == 0 else max(1, round(min(100_000, args.soak - done) / rate))
        got = wrk(url, args.soak_connections, seconds)
        done += int(got["requests"])
        rate = got["rps"]
        busy = rss_mib(proc.pid)
        time.sleep(3)
        print(f"{done:>9} {got['rps']:>7.0f} {busy:>8.1f} {rss_mib(proc.pid):>12.1f}")
    runs, steps = recorded(data)
    print(f"recorded: {runs} runs, {steps} steps")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", default="2,32",
                        type=lambda s: [int(c) for c in s.split(",")])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--soak", type=int, default=0, metavar="N")
    parser.add_argument("--soak-connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as data:
        proc, address = start(data)
        url = f"{address}/hooks/b4"
        try:
            status, answer = post(url)
            if status != 200:
                sys.exit(f"the hook answered {status}: {answer!r}")
            print(f"octoflow {BIN}: ready; idle RSS {rss_mib(proc.pid):.1f} MiB; answer {answer.decode()}")
            (soak if args.soak else throughput)(args, data, proc, url)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
