#!/usr/bin/env python3
"""Latency over time from a bench --history file, with the operator's events (used by
bench/scripts/reconfigure.sh; docs/membership-latency.md)."""
import json, sys
hist, ops = sys.argv[1], sys.argv[2]
BUCKET = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
rows = [json.loads(l) for l in open(hist)]
events = {}
for line in open(ops):
    parts = line.split()
    if parts and parts[0] in ("ready", "add-start", "remove-start"):
        events[parts[0]] = float(parts[1])
    elif parts and parts[0] in ("add-exit", "remove-exit", "bench-exit"):
        events[parts[0]] = (int(parts[1]), float(parts[2]))
t0 = events["ready"]
def rel(t): return t - t0
buckets = {}
for r in rows:
    b = int(r["call"] / 1e6 // BUCKET)
    d = buckets.setdefault(b, {"lat": [], "err": 0})
    if r["status"] == "ok" and r.get("return") is not None:
        d["lat"].append((r["return"] - r["call"]) / 1000.0)
    else:
        d["err"] += 1
def pct(xs, p):
    xs = sorted(xs)
    if not xs: return float("nan")
    k = min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))
    return xs[k]
print(f"events (s after the cluster answered; the bench's clock starts about then): "
      f"add {rel(events['add-start']):.1f}..{rel(events['add-exit'][1]):.1f} (exit {events['add-exit'][0]}), "
      f"remove {rel(events['remove-start']):.1f}..{rel(events['remove-exit'][1]):.1f} (exit {events['remove-exit'][0]})")
print("| t (s) | ops/s | p50 ms | p99 ms | max ms | errors |")
print("|---|---|---|---|---|---|")
for b in sorted(buckets):
    d = buckets[b]; lat = d["lat"]
    print(f"| {b*BUCKET:.0f}-{(b+1)*BUCKET:.0f} | {len(lat)/BUCKET:.0f} | {pct(lat,50):.1f} | {pct(lat,99):.1f} | {max(lat) if lat else float('nan'):.1f} | {d['err']} |")
