#!/usr/bin/env python3
"""Compare a rerun's training log with the committed one (acceptance: loss within 2% at every
logged step both have).

Usage: python3 tools/train/compare_logs.py RERUN.csv [--ref tools/train/logs/engram-tiny.csv] [--tol 0.02]
         [--fields loss,copy_loss_train,copy_loss_eval]   (engram-tiny-chat: --fields loss,chat_loss,lm_loss)
Exit status 1 when a step differs by more than the tolerance.
"""
import argparse
import csv
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIELDS = ["loss", "copy_loss_train", "copy_loss_eval"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rerun")
    ap.add_argument("--ref", default=os.path.join(ROOT, "tools", "train", "logs", "engram-tiny.csv"))
    ap.add_argument("--tol", type=float, default=0.02)
    ap.add_argument("--fields", default=",".join(FIELDS))
    a = ap.parse_args()
    fields = a.fields.split(",")
    ref = {r["step"]: r for r in csv.DictReader(open(a.ref))}
    worst, n, bad = {f: 0.0 for f in fields}, 0, []
    for r in csv.DictReader(open(a.rerun)):
        o = ref.get(r["step"])
        if o is None:
            continue
        n += 1
        for f in fields:
            if not r.get(f) or not o.get(f):
                continue
            d = abs(float(r[f]) - float(o[f])) / abs(float(o[f]))
            worst[f] = max(worst[f], d)
            if d > a.tol:
                bad.append((r["step"], f, o[f], r[f]))
    last = max((int(s) for s in ref), default=0)
    print(f"{n} common logged steps; worst relative difference: " +
          ", ".join(f"{f} {worst[f]:.2e}" for f in fields))
    for step, f, o, r in bad[:20]:
        print(f"  step {step} {f}: committed {o}, rerun {r}")
    if n == 0:
        print(f"no common steps (committed log ends at {last})")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
