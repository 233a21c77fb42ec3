#!/usr/bin/env python3
"""Successor lateness in one window of bench/run.sh's scenario 9, from the server's log
(text format) and two scrapes of its /metrics (admin port), one at each end.

Usage: rotation.py --log server.log --from MS --to MS --interval-ms 2000
                   [--metrics before.txt after.txt]

Prints one line of key=value tokens for a `meta s9` line of results.txt.

Each successor is logged once, as `published next key ... activates_at=<Unix ms>`. In an
unbroken chain a key activates when its predecessor retires, and the predecessor was
planned to retire one interval after it activated; when the successor comes too late to
be published `--publish-ahead` (plus the planner's slack) before that, the rotator
postpones the predecessor's retirement (`postponed retirement: successor was late`) and
the successor activates that much later. So a successor's lateness is
    activates_at(k) - activates_at(k-1) - interval
(0 when on time), and its publication lead is activates_at(k) minus the time it was
logged. Keys published inside the window are counted.
"""

import argparse
import re
import statistics
from datetime import datetime

FIELD = re.compile(r"(\w+)=(\S+)")


def log_time_ms(line):
    stamp = line.split(None, 1)[0]
    return round(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def successors(path):
    """(logged at, activates at) of every pending key published, in log order."""
    keys, postponed = [], []
    for line in open(path, encoding="utf-8", errors="replace"):
        if "published next key" in line:
            fields = dict(FIELD.findall(line))
            if fields.get("state") == "Pending" and "activates_at" in fields:
                keys.append((log_time_ms(line), int(fields["activates_at"])))
        elif "postponed retirement" in line:
            postponed.append(log_time_ms(line))
    return keys, postponed


def scrape(path):
    """The samples of a Prometheus text exposition: name{labels} -> value."""
    samples = {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            pass
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--from", dest="start", type=int, required=True)
    parser.add_argument("--to", dest="end", type=int, required=True)
    parser.add_argument("--interval-ms", type=int, required=True)
    parser.add_argument("--metrics", nargs=2)
    args = parser.parse_args()

    keys, postponed = successors(args.log)
    late, leads = [], []
    for (_, before), (logged, activates) in zip(keys, keys[1:]):
        if args.start <= logged <= args.end:
            late.append(max(0, activates - before - args.interval_ms))
            leads.append(activates - logged)
    out = {
        "keys": len(late),
        "late": sum(1 for ms in late if ms > 0),
        "late_ms": ",".join(str(ms) for ms in late) or "none",
        "lateness_max_ms": max(late, default=0),
        "lateness_mean_ms": round(statistics.mean(late), 1) if late else 0,
        "lead_min_ms": min(leads, default=0),
        "postponed": sum(1 for t in postponed if args.start <= t <= args.end),
    }
    if args.metrics:
        m0, m1 = scrape(args.metrics[0]), scrape(args.metrics[1])

        def delta(name):
            return m1.get(name, 0.0) - m0.get(name, 0.0)

        count = delta('jwks_key_generation_seconds_count{alg="RS256"}')
        total = delta('jwks_key_generation_seconds_sum{alg="RS256"}')
        out["generations"] = int(count)
        out["generation_mean_ms"] = round(total / count * 1000) if count else 0
        spare = m1.get("jwks_spare_key_ready")
        out["spare_ready_at_end"] = "na" if spare is None else int(spare)
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
