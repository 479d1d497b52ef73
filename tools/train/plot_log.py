#!/usr/bin/env python3
"""Plot the training log (total loss and copy loss) into docs/img/.

Usage: /usr/bin/python3 tools/train/plot_log.py [--log tools/train/logs/engram-tiny.csv]
"""
import argparse
import csv
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", default=os.path.join(ROOT, "tools", "train", "logs", "engram-tiny.csv"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.log)))
    step = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    ce = [float(r["copy_loss_eval"]) for r in rows]
    ct = [(int(r["step"]), float(r["copy_loss_train"])) for r in rows if r["copy_loss_train"]]
    pk = [(int(r["step"]), float(r["passkey_probe"])) for r in rows if r.get("passkey_probe")]
    bounds = []
    for i in range(1, len(rows)):
        if rows[i]["stage"] != rows[i - 1]["stage"]:
            bounds.append((int(rows[i]["step"]), rows[i]["stage"], rows[i]["seq_len"]))
    os.makedirs(a.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(step, loss, label="total training loss (batch mean)", lw=1.2)
    ax.plot(step, ce, label="copy loss, fixed eval set (random spans, L=128)", lw=1.2)
    ax.plot([s for s, _ in ct], [c for _, c in ct], label="copy loss on training batches", lw=0.8, alpha=0.6)
    for s, name, L in bounds:
        ax.axvline(s, color="grey", ls=":", lw=0.8)
        ax.text(s, ax.get_ylim()[1] * 0.97, f" {name} (L={L})", fontsize=7, va="top")
    ax.set_xlabel("step")
    ax.set_ylabel("nats / token")
    ax.set_title("engram-tiny training: total and copy loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "loss.png"), dpi=110)

    if pk:
        fig, ax = plt.subplots(figsize=(9, 3))
        ax.plot([s for s, _ in pk], [p for _, p in pk], marker="o", ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title("passkey probe during training (16 held-out prompts, IB wording, teacher-forced exact match)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "passkey_probe.png"), dpi=110)
    print("wrote", os.listdir(a.out))


if __name__ == "__main__":
    main()
