#!/usr/bin/env python3
"""Regenerates hot-functions.txt: the functions `octoflow serve` runs while it starts, answers
a webhook and the API, and idles — listed for the linker, which places them together in the
release binary (see ../build.rs).

Usage: crates/octoflow/layout/generate.py
  Links the release build with its symbols (`cargo rustc --release … -C strip=none`: the
  same code and names as the shipped build), runs it under valgrind's callgrind, and lists
  what ran. Needs valgrind; takes as long as a release link.

The names are the linker's (mangled). A name a later build lacks (changed, or inlined) is
skipped by the linker; regenerate after large changes to what a server runs.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FLOW = ROOT / "bench" / "webhook" / "b4.yml"
BODY = (ROOT / "bench" / "webhook" / "body.json").read_bytes()
PORT = 18599


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body else {}
    conn.request(method, path, body, headers)
    response = conn.getresponse()
    return response.status, response.read()


def drive():
    for _ in range(600):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            request(conn, "GET", "/healthz")
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("the server did not start")
    request(conn, "GET", "/readyz")
    for _ in range(3):
        status, answer = request(conn, "POST", "/hooks/b4", BODY)
        assert status == 200, answer
    status, runs = request(conn, "GET", "/api/v1/runs")
    assert status == 200, runs
    first = json.loads(runs)["items"][0]["id"]
    for path in ["/api/v1/runs/" + first, "/api/v1/runs/" + first + "/logs",
                 "/api/v1/flows", "/metrics"]:
        request(conn, "GET", path)
    time.sleep(6)  # idle: timers, lease sweeps, metric upkeep


def main():
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind (apt-get install valgrind)")
    subprocess.run(["cargo", "rustc", "--release", "-p", "octoflow", "--bin", "octoflow",
                    "--", "-C", "strip=none"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as data:
        binary = Path(data) / "octoflow"
        shutil.copy(ROOT / "target" / "release" / "octoflow", binary)
        (Path(data) / "flows").mkdir()
        shutil.copy(FLOW, Path(data) / "flows" / "b4.yml")
        out = Path(data) / "callgrind.out"
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
             str(binary), "serve", "--data", data, "--listen", f"127.0.0.1:{PORT}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # At `info`: the log's formatting code runs too (a few lines at start), so a node
            # logging at `info` finds it laid out with the rest; `warn` (the default) runs
            # a subset of it.
            env={**os.environ, "OCTOFLOW_LOG": "info"})
        try:
            drive()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=120)
        names, seen = [], set()
        for line in out.read_text(errors="replace").splitlines():
            found = re.match(r"c?fn=\(\d+\) (\S+)$", line)
            if found and found.group(1) not in seen:
                seen.add(found.group(1))
                names.append(found.group(1))
        symbols = subprocess.run(["nm", "--defined-only", str(binary)], capture_output=True,
                                 text=True, check=True).stdout
    code = {parts[2] for parts in map(str.split, symbols.splitlines())
            if len(parts) == 3 and parts[1] in "tTwW"}
    # Only our own binary's functions (not libc's), in the order first met.
    hot = [name for name in names if name in code]
    (HERE / "hot-functions.txt").write_text("".join(name + "\n" for name in hot))
    print(f"{len(hot)} functions written to {HERE / 'hot-functions.txt'}")


if __name__ == "__main__":
    main()
