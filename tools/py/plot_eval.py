#!/usr/bin/python3
"""Turns the JSON written by `engram eval ppl|segment|passkey|kv --json` into PNGs and markdown tables.

  plot_eval.py ppl     --out docs/img/ppl_heldout.png [--logx] [--title T] [--md T.md] A.json B.json ...
  plot_eval.py segment --out docs/img/segment.png [--md T.md] SEGMENT.json
  plot_eval.py passkey --out docs/img/passkey.png [--md T.md] A.json B.json ...
  plot_eval.py kv      --out docs/img/kv.png [--md T.md] A.json B.json ...

ppl:     one curve per JSON file (perplexity of each bucket of tokens over position, one line
         per memory policy), the overall figure in the legend; --md writes a table of the
         overall, first- and last-bucket perplexity per policy.
segment: bar charts of recall of the document boundaries within +-k, modularity, conductance
         and intra/inter similarity per segmentation (S SM SC F FM FC R), and recall against the
         tolerance k; --md writes the table.
passkey: one heatmap per memory policy (JSON files of the same policy are merged): answer
         accuracy per length x depth, the needle hit rate of the last layer written in each
         cell; --md writes accuracy, hit rate per layer and trials per length.
kv:      per memory policy and length, the share of right answers, of answers that are
         another needle's key, and the hit rate (every layer loaded the asked needle) as bars;
         --md writes the same per policy and length.

Tooling only (scripts/eval.sh calls it); needs /usr/bin/python3 with matplotlib (Debian
python3-matplotlib). The build and the tests never need it.
"""

import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

COLORS = {"full": "#444444", "window": "#d62728", "sinks": "#1f77b4", "blocks": "#2ca02c",
          "episodic": "#9467bd"}
SEG_COLORS = {"S": "#9467bd", "SM": "#b294d4", "SC": "#cbb6e6", "F": "#1f77b4", "FM": "#5fa2d6",
              "FC": "#9cc5e8", "R": "#999999"}
GAMMA_STYLES = ["-", "--", ":", "-."]


def seg_color(name):
    """S*, F*, R* rows share their family's colour; rows at another gamma (S@2) are hatched"""
    return SEG_COLORS.get(name.split("@")[0], "#777777")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def bucket_ppl(run, lo, hi):
    """perplexity over the buckets whose end lies in (lo, hi], weighted by their sizes"""
    nll, n = 0.0, 0
    for c in run["curve"]:
        if lo < c["end"] <= hi:
            nll += math.log(c["ppl"]) * c["n"]
            n += c["n"]
    return math.exp(nll / n) if n else float("nan")


def plot_ppl(args):
    runs = [load(p) for p in args.files]
    for r, p in zip(runs, args.files):
        if r.get("task") != "ppl":
            sys.exit(f"plot_eval: {p} is not the JSON of `engram eval ppl`")
    ref = next((r for r in runs if r["memory"] == args.ref), None)
    fig, axes = plt.subplots(2 if ref else 1, 1, figsize=(9, 8 if ref else 5), sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [3, 2] if ref else [1]})
    ax = axes[0][0]
    for r in runs:
        xs = [c["end"] for c in r["curve"]]
        ys = [c["ppl"] for c in r["curve"]]
        label = f"{r['memory']} (overall {r['ppl']:.1f}{', cut to ' + str(r['n_tokens']) if r.get('truncated') else ''})"
        ax.plot(xs, ys, marker="o" if len(xs) < 3 else None, ms=4, lw=1.4,
                color=COLORS.get(r["memory"]), label=label)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    bucket = runs[0]["bucket"]
    ax.set_ylabel(f"perplexity of each {bucket}-token bucket")
    ax.set_title(args.title or "streaming perplexity")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if ref:
        # The text changes from bucket to bucket; the ratio to one policy on the same buckets
        # shows what the policies change.
        bx = axes[1][0]
        ref_by_end = {c["end"]: c["ppl"] for c in ref["curve"]}
        for r in runs:
            if r is ref:
                continue
            pts = [(c["end"], c["ppl"] / ref_by_end[c["end"]]) for c in r["curve"] if c["end"] in ref_by_end]
            if pts:
                bx.plot(*zip(*pts), lw=1.4, marker="o" if len(pts) < 3 else None, ms=4,
                        color=COLORS.get(r["memory"]), label=r["memory"])
        bx.axhline(1.0, color=COLORS.get(ref["memory"]), lw=1)
        bx.set_ylabel(f"ratio to {ref['memory']} (same bucket)")
        bx.grid(True, alpha=0.3)
        bx.legend()
    axes[-1][0].set_xlabel("position in the stream (tokens)")
    if args.logx:
        ax.set_xscale("log")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    if args.md:
        lines = ["| memory | tokens | overall ppl | first bucket (tokens 1-{0}) | last bucket | "
                 "ppl of the last 10% of the stream | that / first bucket | tok/s |".format(bucket),
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in runs:
            c0, c1 = r["curve"][0], r["curve"][-1]
            tail = bucket_ppl(r, 0.9 * r["n_tokens"], r["n_tokens"]) if len(r["curve"]) > 1 else c1["ppl"]
            lines.append(f"| {r['memory']} | {r['n_tokens']:,} | {r['ppl']:.2f} | {c0['ppl']:.2f} | "
                         f"{c1['ppl']:.2f} (at {c1['end']:,}) | {tail:.2f} | {tail / c0['ppl']:.3f} | "
                         f"{r['tok_per_s']:.0f} |")
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.md}")


def plot_segment(args):
    if len(args.files) != 1:
        sys.exit("plot_eval segment: give exactly one JSON file")
    r = load(args.files[0])
    if r.get("task") != "segment":
        sys.exit(f"plot_eval: {args.files[0]} is not the JSON of `engram eval segment`")
    rows = r["rows"]
    names = [x["segmentation"] for x in rows]
    colors = [seg_color(n) for n in names]
    hatches = ["//" if "@" in n else "" for n in names]
    panels = [("recall", f"recall of document boundaries (±{r['k']} tokens)", "higher is better"),
              ("modularity", "modularity", "higher is better"),
              ("conductance", "conductance", "lower is better"),
              ("intra_inter", "intra / inter similarity", "higher is better")]
    fig, axes = plt.subplots(1, 5, figsize=(22, 5))
    for ax, (key, title, better) in zip(axes, panels):
        vals = [x[key] for x in rows]
        ax.bar(names, vals, color=colors, hatch=hatches, edgecolor="white")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.4g}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.set_title(f"{title}\n({better})", fontsize=10)
        lo, hi = min(vals), max(vals)
        if key not in ("recall", "modularity") and hi > lo:
            pad = (hi - lo) * 0.6
            ax.set_ylim(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
    ax = axes[4]
    ks = r["ks"]
    groups = []
    for x in rows:
        name = x["segmentation"]
        family, _, gamma = name.partition("@")
        if family not in ("S", "F", "R"):
            continue
        if gamma not in groups:
            groups.append(gamma)
        ax.plot(ks, [x["recall_by_k"][str(k)] for k in ks], marker="o", ms=3,
                ls=GAMMA_STYLES[groups.index(gamma) % len(GAMMA_STYLES)], color=seg_color(name),
                label=name)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("tolerance k (tokens)")
    ax.set_title("recall against the tolerance k", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.suptitle(f"event boundaries on {r['n_documents']} concatenated held-out documents "
                 f"({r['n_tokens']:,} tokens; S at gamma {r['gamma']:g}: {rows[0]['events']:.0f} events; "
                 f"X@g: surprise threshold gamma g and its baselines; graph metrics over "
                 f"{r['n_windows']} windows of {r['window']} tokens)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    if args.md:
        ks_show = [k for k in ks if k in (0, 2, 4, 8, 16)]
        head = ("| segmentation | events | mean event | " +
                " | ".join(f"recall ±{k}" for k in ks_show) +
                " | modularity ↑ | conductance ↓ | intra/inter ↑ |")
        lines = [head, "| --- |" + " ---: |" * (2 + len(ks_show) + 3)]
        for x in rows:
            rec = " | ".join(f"{x['recall_by_k'][str(k)]:.3f}" for k in ks_show)
            lines.append(f"| {x['segmentation']} | {x['events']:.0f} | {x['mean_event']:.1f} | {rec} | "
                         f"{x['modularity']:.5f} | {x['conductance']:.5f} | {x['intra_inter']:.4f} |")
        sp = r.get("surprise")
        if sp:
            lines += ["", f"Surprise over the stream: mean {sp['mean']:.2f} nats, std {sp['std']:.2f}; "
                      f"at the first token of a document: mean {sp['at_boundaries_mean']:.2f} "
                      f"(average percentile {sp['at_boundaries_percentile']:.0f})."]
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.md}")


def merge_passkey(files):
    """policy -> {(length, depth): [trials]} over every JSON file of that policy"""
    by_policy = {}
    for path in files:
        run = load(path)
        if run.get("task") != "passkey":
            sys.exit(f"{path}: not the JSON of engram eval passkey")
        cells = by_policy.setdefault(run["memory"], {})
        for t in run["trials"]:
            cells.setdefault((t["length"], t["depth"]), []).append(t)
    return by_policy


def fmt_len(n):
    return f"{n // 1048576}M" if n % 1048576 == 0 else f"{n // 1024}k" if n % 1024 == 0 else str(n)


def plot_passkey(args):
    by_policy = merge_passkey(args.files)
    policies = [p for p in COLORS if p in by_policy] + [p for p in by_policy if p not in COLORS]
    fig, axes = plt.subplots(1, len(policies), figsize=(3.2 * len(policies) + 1, 3.6), squeeze=False)
    for ax, pol in zip(axes[0], policies):
        cells = by_policy[pol]
        lengths = sorted({k[0] for k in cells})
        depths = sorted({k[1] for k in cells})
        acc = [[float("nan")] * len(lengths) for _ in depths]
        for (L, d), ts in cells.items():
            acc[depths.index(d)][lengths.index(L)] = sum(t["correct"] for t in ts) / len(ts)
        im = ax.imshow(acc, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="upper")
        for (L, d), ts in cells.items():
            # Hit: every layer attended every needle token while reading the question.
            hit = [min(t["needle_attended"]) == 1.0 for t in ts if t.get("needle_attended")]
            txt = f"{sum(t['correct'] for t in ts)}/{len(ts)}"
            if hit:
                txt += f"\nhit {sum(hit) / len(hit):.2f}"
            ax.text(lengths.index(L), depths.index(d), txt, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(lengths)), [fmt_len(L) for L in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
        ax.set_xlabel("stream length (tokens)")
        ax.set_title(pol, color=COLORS.get(pol, "black"))
    axes[0][0].set_ylabel("needle depth")
    fig.colorbar(im, ax=axes[0].tolist(), label="answer accuracy", shrink=0.8)
    fig.suptitle(args.title or "passkey: accuracy per cell (hit = every layer loaded the needle)",
                 fontsize=10)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"wrote {args.out}")
    if args.md:
        lines = ["| policy | length | trials | accuracy | hit rate (all layers) | needle loaded, per layer |",
                 "|---|---|---|---|---|---|"]
        for pol in policies:
            cells = by_policy[pol]
            for L in sorted({k[0] for k in cells}):
                ts = [t for (l, _), v in cells.items() if l == L for t in v]
                n_layer = max(len(t.get("needle_attended", [])) for t in ts)
                per_layer = [sum(t["needle_attended"][i] == 1.0 for t in ts) / len(ts)
                             for i in range(n_layer)]
                lines.append(f"| `{pol}` | {fmt_len(L)} | {len(ts)} | "
                             f"{sum(t['correct'] for t in ts) / len(ts):.2f} | "
                             f"{sum(t['hit_rate'] for t in ts) / len(ts):.2f} | "
                             + " / ".join(f"{x:.2f}" for x in per_layer) + " |")
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.md}")


def plot_kv(args):
    """policy x length: accuracy, another needle's key, hit rate"""
    rows = {}  # (policy, length) -> trials
    keys = set()
    for path in args.files:
        run = load(path)
        if run.get("task") != "kv":
            sys.exit(f"{path}: not the JSON of engram eval kv")
        keys.add(run["keys"])
        for t in run["trials"]:
            rows.setdefault((run["memory"], t["length"]), []).append(t)
    order = list(COLORS)
    cells = sorted(rows, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1]))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(cells) + 2), 3.8))
    width = 0.27
    series = [("accuracy", lambda ts: sum(t["correct"] for t in ts) / len(ts), 1.0),
              ("another needle's key", lambda ts: sum(t["other_key"] for t in ts) / len(ts), 0.45),
              ("hit rate", lambda ts: sum(t["hit_rate"] for t in ts) / len(ts), 0.2)]
    for i, (label, f, alpha) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(cells))]
        ys = [f(rows[c]) for c in cells]
        ax.bar(xs, ys, width, color=[COLORS.get(c[0], "#777777") for c in cells], alpha=alpha,
               edgecolor="black", linewidth=0.5, label=label)
    ax.set_xticks(range(len(cells)), [f"{c[0]}\n{fmt_len(c[1])}\n(n={len(rows[c])})" for c in cells],
                  fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of prompts")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(args.title or f"kv: {'/'.join(map(str, sorted(keys)))} labelled keys per prompt, one asked",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    if args.md:
        lines = ["| policy | length | keys | prompts | accuracy | another needle's key | hit rate (all layers) "
                 "| needles the last layer loaded |",
                 "|---|---|---|---|---|---|---|---|"]
        for c in cells:
            ts = rows[c]
            loaded = sum(t["needles_loaded"] for t in ts) / len(ts)
            lines.append(f"| `{c[0]}` | {fmt_len(c[1])} | {len(ts[0]['keys'])} | {len(ts)} | "
                         + " | ".join(f"{f(ts):.2f}" for _, f, _ in series)
                         + f" | {loaded:.2f} of {len(ts[0]['keys'])} |")
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.md}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["ppl", "segment", "passkey", "kv"])
    ap.add_argument("files", nargs="+", help="JSON written by engram eval ... --json")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--md", help="also write the table as markdown here")
    ap.add_argument("--title")
    ap.add_argument("--logx", action="store_true", help="ppl: logarithmic position axis")
    ap.add_argument("--ref", default="sinks", help="ppl: policy the others are divided by, bucket by bucket")
    args = ap.parse_args()
    {"ppl": plot_ppl, "segment": plot_segment, "passkey": plot_passkey, "kv": plot_kv}[args.kind](args)


if __name__ == "__main__":
    main()
