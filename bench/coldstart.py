#!/usr/bin/env python3
"""Cold start of jwks-server: time from process start to the first 200 of the JWKS.

Usage: coldstart.py --mode fresh|existing --reps N --url URL --workdir DIR -- CMD...

Every `@DB@` in CMD is replaced by a database path: a new one per repetition (fresh),
or one database created by an untimed priming start (existing; `:memory:` cannot
persist, so CMD must use a file). Prints `median_ms=... min_ms=... max_ms=... runs=...`.
"""

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse


def first_200(url: str, deadline_s: float) -> float:
    """Polls `url` until it answers 200; returns the instant (perf_counter) it did."""
    parts = urllib.parse.urlsplit(url)
    end = time.perf_counter() + deadline_s
    while time.perf_counter() < end:
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline_s)
            conn.request("GET", parts.path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.001)
    raise TimeoutError(f"no 200 from {url} within {deadline_s}s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(cmd: list[str], db: str, log) -> subprocess.Popen:
    argv = [db if a == "@DB@" else a for a in cmd]
    return subprocess.Popen(argv, stdout=log, stderr=log)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["fresh", "existing"], required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--url", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    os.makedirs(args.workdir, exist_ok=True)
    log = open(os.path.join(args.workdir, f"coldstart-{args.mode}.log"), "ab")

    existing = os.path.join(args.workdir, "existing.db")
    if args.mode == "existing":
        proc = start(cmd, existing, log)
        first_200(args.url, 60)
        stop(proc)

    times = []
    for i in range(args.reps):
        db = existing if args.mode == "existing" else os.path.join(args.workdir, f"fresh-{i}.db")
        t0 = time.perf_counter()
        proc = start(cmd, db, log)
        try:
            t1 = first_200(args.url, 60)
        finally:
            stop(proc)
        times.append((t1 - t0) * 1000)
        time.sleep(0.2)
    print(
        f"median_ms={statistics.median(times):.1f} min_ms={min(times):.1f} "
        f"max_ms={max(times):.1f} runs={len(times)} all_ms="
        + ",".join(f"{t:.1f}" for t in times)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
