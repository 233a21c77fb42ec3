#!/usr/bin/env python3
"""Turns the raw lines bench/run.sh collected (results.txt) into a Markdown summary:
per-case medians and spreads, the ratios against the same-run ceiling, and the targets
of issue 6 met or missed.

Usage: summarize.py results.txt > summary.md

Line formats (space-separated key=value tokens):
  run case=C target=server|ceiling|plain conns=N rep=R rps=.. p50_us=.. p99_us=.. requests=..
      duration_us=.. err_*=.. cpu_ticks=.. clk_tck=..
  meta NAME key=value ...
"""

import statistics
import sys
from collections import defaultdict


def parse(path):
    runs = defaultdict(list)
    meta = defaultdict(list)
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if not parts:
            continue
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if parts[0] == "run":
            runs[(kv["case"], kv["target"])].append(kv)
        elif parts[0] == "meta":
            meta[parts[1]].append(kv)
    return runs, meta


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class Case:
    """Median and spread of one case's repetitions."""

    def __init__(self, reps):
        self.reps = reps
        rps = [float(r["rps"]) for r in reps]
        self.rps = statistics.median(rps)
        self.rps_min, self.rps_max = min(rps), max(rps)
        self.p50_ms = statistics.median(int(r["p50_us"]) for r in reps) / 1000
        p99 = [int(r["p99_us"]) for r in reps]
        self.p99_ms = statistics.median(p99) / 1000
        self.p99_max_ms = max(p99) / 1000
        cpu = []
        util = []
        for r in reps:
            ticks, hz, n = int(r["cpu_ticks"]), int(r["clk_tck"]), int(r["requests"])
            secs = ticks / hz
            cpu.append(secs * 1e6 / n if n else float("nan"))
            util.append(secs / (int(r["duration_us"]) / 1e6))
        self.cpu_us = statistics.median(cpu)
        self.util = statistics.median(util)
        self.errors = sum(
            int(r[k]) for r in reps for k in r if k.startswith("err_")
        )
        self.conns = reps[0].get("conns", "?")
        bg = [int(r["bg_ticks"]) / int(r["clk_tck"]) / (int(r["duration_us"]) / 1e6)
              for r in reps if "bg_ticks" in r]
        self.bg_util = statistics.median(bg) if bg else None

    def spread_pct(self):
        return 100 * (self.rps_max - self.rps_min) / self.rps if self.rps else 0


def fmt_rps(c):
    return f"{c.rps:,.0f} (±{c.spread_pct() / 2:.0f}%)"


def main():
    runs, meta = parse(sys.argv[1])
    cases = {k: Case(v) for k, v in runs.items()}
    out = []
    w = out.append

    def get(case, target="server"):
        return cases.get((case, target))

    w("| scenario | conns | server req/s (median, ±half-range) | server p50 / p99 ms | "
      "server CPU µs/req | server CPU use | ceiling req/s | ceiling p99 ms | ceiling CPU µs/req | "
      "req/s ratio | CPU/req ratio | errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = sorted({k[0] for k in cases}, key=lambda c: list(runs).index((c, "server"))
                   if (c, "server") in runs else 999)
    for name in order:
        s, c = get(name), get(name, "ceiling")
        if s is None:
            continue
        row = [name, s.conns, fmt_rps(s), f"{s.p50_ms:.2f} / {s.p99_ms:.2f}",
               f"{s.cpu_us:.1f}", f"{s.util * 100:.0f}%"]
        if c:
            row += [fmt_rps(c), f"{c.p99_ms:.2f}", f"{c.cpu_us:.1f}",
                    f"{s.rps / c.rps:.2f}", f"{s.cpu_us / c.cpu_us:.2f}"]
        else:
            row += ["", "", "", "", ""]
        row.append(str(s.errors + (c.errors if c else 0)))
        w("| " + " | ".join(row) + " |")
    w("")

    plains = [(name, get(name), c) for (name, target), c in cases.items() if target == "plain"]
    if plains:
        w("Scenario 8, the same build over plain HTTP, alternating with the runs above:")
        w("")
        w("| case | over TLS req/s | p99 ms | CPU µs/req | plain HTTP req/s | p99 ms | "
          "CPU µs/req | req/s TLS ÷ plain | CPU/req TLS ÷ plain |")
        w("|---|---|---|---|---|---|---|---|---|")
        for name, s, p in plains:
            if s:
                w(f"| {name} | {fmt_rps(s)} | {s.p99_ms:.2f} | {s.cpu_us:.1f} | {fmt_rps(p)} | "
                  f"{p.p99_ms:.2f} | {p.cpu_us:.1f} | {s.rps / p.rps:.2f} | {s.cpu_us / p.cpu_us:.2f} |")
        w("")

    rotation = defaultdict(list)
    for m in meta.get("s9", []):
        rotation[m["case"]].append(m)
    if rotation:
        w("Scenario 9, rotation every 2 s on a saturated core (per case: all repetitions' "
          "windows together; lateness = activation minus the predecessor's planned retirement):")
        w("")
        w("| case | successors | late | lateness median / max ms | least publication lead ms | "
          "key generations, mean ms | p99 ms (median of reps, worst) | req/s | server CPU use | hog CPU |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for name, ms in rotation.items():
            late = [int(x) for m in ms for x in m["late_ms"].split(",") if x != "none"]
            late_only = [x for x in late if x > 0]
            gens = sum(int(m.get("generations", 0)) for m in ms)
            gen_ms = (sum(int(m.get("generations", 0)) * float(m.get("generation_mean_ms", 0))
                          for m in ms) / gens) if gens else 0
            leads = [int(m["lead_min_ms"]) for m in ms if int(m["keys"])]
            s = get(name)
            hog = [int(m["hog_ticks"]) for m in ms]
            hog_use = ""
            if s and any(hog):
                secs = statistics.median(int(r["duration_us"]) for r in s.reps) / 1e6
                hog_use = f"{statistics.median(hog) / int(s.reps[0]['clk_tck']) / secs * 100:.1f}%"
            w(f"| {name} | {len(late)} | {len(late_only)} | "
              f"{statistics.median(late_only) if late_only else 0:.0f} / {max(late, default=0)} | "
              f"{min(leads, default=0)} | {gens} × {gen_ms:.0f} | "
              + (f"{s.p99_ms:.2f} ({s.p99_max_ms:.2f}) | {s.rps:,.0f} | {s.util * 100:.0f}%"
                 if s else " | | ") + f" | {hog_use} |")
        w("")

    signs = {m["alg"]: float(m["signs_per_sec"]) for m in meta.get("sign", [])}
    if signs:
        w("Raw signing loop without HTTP, pinned to the server core: " + ", ".join(
            f"{a} {r:,.0f}/s" for a, r in signs.items()) + ".")
        w("")
    for m in meta.get("keys", []):
        w(f"Published keys for `{m['case']}`: wanted {m['wanted']}, seen {m['seen']} "
          f"(samples before/after each repetition).")
    for (name, target), c in cases.items():
        if c.bg_util is not None:
            w(f"The ceiling's `{name}` repetitions ran beside the still-rotating server, which "
              f"used {c.bg_util * 100:.1f}% of the shared core meanwhile (its idle key rotation).")
    if meta.get("keys"):
        w("")
    for name in ("mem", "soak", "cold", "s6", "load", "note"):
        for m in meta.get(name, []):
            w(f"- {name}: " + ", ".join(f"{k}={v}" for k, v in m.items()))
    w("")

    # Targets of issue 6.
    w("| target | figure | met |")
    w("|---|---|---|")

    def target(text, figure, ok):
        mark = "n/a" if ok is None else ("yes" if ok else "**no**")
        w(f"| {text} | {figure} | {mark} |")

    for alg, floor in (("RS256", 0.90), ("ES256", 0.80), ("EdDSA", 0.80)):
        s, c = get(f"auth_{alg}"), get(f"auth_{alg}", "ceiling")
        if s and c:
            raw = f"; raw signing {signs[alg]:,.0f}/s" if alg in signs else ""
            target(f"POST /auth {alg} ≥ {floor:.2f} × ceiling",
                   f"{s.rps:,.0f} / {c.rps:,.0f} = {s.rps / c.rps:.2f}{raw}",
                   s.rps / c.rps >= floor)
    s, c = get("token_cc_ES256"), get("token_cc_ES256", "ceiling")
    if s and c:
        target("POST /token client_credentials ES256 ≥ 0.85 × ceiling POST /auth ES256",
               f"{s.rps:,.0f} / {c.rps:,.0f} = {s.rps / c.rps:.2f}", s.rps / c.rps >= 0.85)
    s, c = get("get_c64_k1"), get("get_c64_k1", "ceiling")
    if s and c:
        target("GET JWKS ≥ 0.90 × ceiling req/s (64 conns)",
               f"{s.rps:,.0f} / {c.rps:,.0f} = {s.rps / c.rps:.2f}", s.rps / c.rps >= 0.90)
        target("GET JWKS CPU/req ≤ 1.3 × ceiling",
               f"{s.cpu_us:.1f} / {c.cpu_us:.1f} µs = {s.cpu_us / c.cpu_us:.2f}",
               s.cpu_us / c.cpu_us <= 1.3)
        target("GET JWKS p99 < 2 ms at 64 conns", f"{s.p99_ms:.2f} ms (worst rep {s.p99_max_ms:.2f})",
               s.p99_ms < 2.0)
    n, ok200 = get("get304_c64_k1"), get("get200_c64_k1") or s
    if ok200 and n:
        target("a 304 costs no more than a 200 (CPU/req, alternating runs; ≤ 1.05× allows for noise)",
               f"{n.cpu_us:.1f} vs {ok200.cpu_us:.1f} µs = {n.cpu_us / ok200.cpu_us:.2f}",
               n.cpu_us <= ok200.cpu_us * 1.05)
    mem = meta.get("mem", [{}])[0]
    idle, peak = num(mem.get("idle_rss_kib")), num(mem.get("peak_hwm_kib"))
    if idle is not None:
        target("idle RSS ≤ 12 MiB", f"{idle / 1024:.1f} MiB", idle <= 12 * 1024)
    if peak is not None:
        target("peak RSS ≤ 48 MiB at 1024 conns", f"{peak / 1024:.1f} MiB", peak <= 48 * 1024)
    soak = meta.get("soak", [{}])[0]
    if "first_rss_kib" in soak:
        first, last = float(soak["first_rss_kib"]), float(soak["last_rss_kib"])
        target(f"memory flat under constant load ({soak['secs']} s, issue asks 600 s)",
               f"{first / 1024:.1f} → {last / 1024:.1f} MiB (max {float(soak['max_rss_kib']) / 1024:.1f})",
               last <= first * 1.05 + 512)
    for m in meta.get("cold", []):
        limit = 300 if m["mode"] == "fresh" else 50
        target(f"cold start, {m['mode']} database ≤ {limit} ms",
               f"median {m['median_ms']} ms (min {m['min_ms']}, max {m['max_ms']})",
               float(m["median_ms"]) <= limit)
    for rot, base in (("rot_get_c64", "get_c64_k1"), ("rot_auth_RS256", "auth_RS256"),
                      ("rot_get_c2", "get_c2")):
        r, b = get(rot), get(base)
        if r and b:
            target(f"rotation moves p99 < 2× ({rot} vs {base})",
                   f"{r.p99_ms:.2f} vs {b.p99_ms:.2f} ms = {r.p99_ms / b.p99_ms:.2f}×",
                   r.p99_ms / b.p99_ms < 2.0)
    print("\n".join(out))


if __name__ == "__main__":
    main()
