"""Deterministic training/eval sample generators for engram-tiny.

Every sample is a list of exactly L token ids starting with BOS (id 1), plus a list
of (start, end) ranges marking "copy" targets (tokens predictable only by copying
from earlier context), used for the copy-loss metric.

Sample kinds:
  copy_random  random tokens from the whole vocabulary with spans repeated after random gaps
  copy_text    Brown text in which a span (Brown or random tokens) is repeated after a gap
  brown        a window of the Brown training token stream
  passkey      passkey sentences hidden in Brown filler (InfiniteBench wording and variants)
  kv           key-value records (lists or sentences in filler) with a query at the end
  multikey     several labelled pass keys, one queried
Held-out wordings (never generated here, used only by evaluation): see reference.py.
"""
import re

import numpy as np

BOS, EOS = 1, 2
FIRST_REAL = 3

IB_INTRO = ("There is an important info hidden inside a lot of irrelevant text. "
            "Find it and memorize them. I will quiz you about the important information there.")
IB_NEEDLE = "The pass key is {k}. Remember it. {k} is the pass key."
IB_QUESTION = "What is the pass key? The pass key is"

INTROS = [
    IB_INTRO,
    "Read the following text carefully. Somewhere in it there is a pass key that you must remember.",
    "Below is a long passage. One sentence in it holds a key. Remember the key.",
    "Pay attention to the important detail in the text below.",
    "",
]
NEEDLES = [
    IB_NEEDLE,
    "The pass key is {k}.",
    "Remember this pass key: {k}.",
    "The passkey is {k}. Do not forget it.",
    "Important: the pass key is {k}. {k} is the pass key.",
    "My pass key is {k}, remember it.",
]
QUESTIONS = [
    IB_QUESTION,
    "What is the passkey? The passkey is",
    "Question: what is the pass key? Answer: the pass key is",
    "Do you remember the pass key? The pass key is",
    "What was the pass key mentioned in the text? The pass key is",
]
LABELS = ["the red door", "the blue box", "the green gate", "the north office", "the old safe", "the front desk",
          "the garden shed", "the main server", "the back room", "the west wing", "the small locker", "the car"]
NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack", "Kate", "Louis",
         "Mary", "Nora", "Oscar", "Paul", "Ruth", "Sam", "Tom", "Vera"]


def split_sentences(doc):
    return [s for s in re.split(r"(?<=[.!?\"])\s+(?=[A-Z\"])", doc.strip()) if s]


def rand_key(rng, kind=None):
    if kind is None:
        kind = rng.choice(["d5", "d5", "d5", "dn", "alnum", "word"], p=[0.3, 0.2, 0.1, 0.2, 0.1, 0.1])
    if kind == "d5":
        return str(rng.integers(10000, 100000))
    if kind == "dn":
        n = int(rng.integers(2, 9))
        return "".join(str(d) for d in rng.integers(0, 10, n))
    if kind == "alnum":
        n = int(rng.integers(3, 7))
        chars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
        return "".join(chars[i] for i in rng.integers(0, len(chars), n))
    # word
    return str(rng.choice(["apple", "river", "silver", "tiger", "window", "orange", "mountain", "pencil",
                           "castle", "violet", "rocket", "harbor", "candle", "falcon", "meadow", "copper"]))


class TaskGen:
    def __init__(self, sp, train_tokens, train_sentences, vocab_size=4096):
        self.sp = sp
        self.stream = train_tokens  # np.int32 array (train text tokenized as one stream)
        self.sent = train_sentences  # list of str
        self.V = vocab_size
        self.words = None

    # -- helpers ------------------------------------------------------------
    def enc(self, text):
        return self.sp.encode(text)

    def filler(self, rng, n_tokens_est):
        """consecutive training sentences starting at a random one, about n_tokens_est tokens"""
        out = []
        i = int(rng.integers(0, len(self.sent)))
        n = 0
        while n < n_tokens_est:
            s = self.sent[i % len(self.sent)]
            out.append(s)
            n += len(s) // 4 + 1  # rough estimate; exact length is fixed up after encoding
            i += 1
        return out

    def stream_window(self, rng, n):
        s = int(rng.integers(0, len(self.stream) - n - 1))
        return [int(t) for t in self.stream[s:s + n]]

    def finish(self, rng, toks, L, copy_ranges):
        """BOS + toks, padded with '\n\n' + Brown stream to exactly L tokens"""
        seq = [BOS] + toks
        if len(seq) < L:
            seq += [13, 13]  # two newline byte tokens <0x0A> (id 3 + 0x0A)
            seq += self.stream_window(rng, max(0, L - len(seq)))
        return seq[:L], [(a + 1, b + 1) for a, b in copy_ranges if b + 1 <= L]

    def fit_text(self, rng, build, L):
        """build(drop) -> (text, answer_start_char). Drop filler until it fits in L-1 tokens."""
        drop = 0
        while True:
            text = build(drop)
            toks = self.enc(text)
            if len(toks) <= L - 1 or drop > 200:
                return toks[: L - 1]
            drop += max(1, (len(toks) - (L - 1)) // 25)

    # -- kinds --------------------------------------------------------------
    def copy_random(self, rng, L):
        seq = rng.integers(FIRST_REAL, self.V, L - 1).tolist()
        ranges = []
        npairs = 1 + (L - 1) // 128
        seg = (L - 1) // npairs
        for j in range(npairs):
            base = j * seg
            m = int(rng.integers(8, max(9, min(48, (seg * 15) // 32) + 1)))
            gap_max = seg - 2 * m
            p = int(rng.integers(0, max(1, gap_max // 2 + 1)))
            g = int(rng.integers(0, max(1, gap_max - p + 1)))
            a = base + p
            b = a + m + g
            seq[b:b + m] = seq[a:a + m]
            ranges.append((b + 1, b + m))  # first repeated token is not predictable
        return self.finish(rng, seq, L, ranges)

    def copy_text(self, rng, L):
        seq = self.stream_window(rng, L - 1)
        m = int(rng.integers(6, max(7, min(64, (L - 1) // 3) + 1)))
        a = int(rng.integers(0, max(1, (L - 1) - 2 * m)))
        b = int(rng.integers(a + m, (L - 1) - m + 1))
        if rng.random() < 0.3:
            seq[a:a + m] = rng.integers(FIRST_REAL, self.V, m).tolist()
        seq[b:b + m] = seq[a:a + m]
        return self.finish(rng, seq, L, [(b + 1, b + m)])

    def brown(self, rng, L):
        return [BOS] + self.stream_window(rng, L - 1), []

    def passkey(self, rng, L):
        key = rand_key(rng)
        exact = rng.random() < 0.5
        intro = IB_INTRO if exact else str(rng.choice(INTROS))
        needle = (IB_NEEDLE if exact else str(rng.choice(NEEDLES))).format(k=key)
        question = IB_QUESTION if (exact or rng.random() < 0.3) else str(rng.choice(QUESTIONS))
        fill = self.filler(rng, L)
        depth = rng.random()

        def build(drop):
            f = fill[: max(0, len(fill) - drop)]
            pos = int(round(depth * len(f)))
            parts = ([intro] if intro else []) + f[:pos] + [needle] + f[pos:] + [question + " " + key + "."]
            return " ".join(parts)

        toks = self.fit_text(rng, build, L)
        return self.finish(rng, toks, L, [])

    def multikey(self, rng, L):
        n = int(rng.integers(2, 6))
        labs = [str(x) for x in rng.choice(LABELS, n, replace=False)]
        keys = [rand_key(rng, "d5" if rng.random() < 0.6 else None) for _ in range(n)]
        q = int(rng.integers(0, n))
        fill = self.filler(rng, L)
        depths = sorted(rng.random(n))
        style = int(rng.integers(0, 2))

        def build(drop):
            f = fill[: max(0, len(fill) - drop)]
            cuts = [int(round(d * len(f))) for d in depths]
            parts, last = [], 0
            for c, lab, k in zip(cuts, labs, keys):
                parts += f[last:c] + [f"The pass key for {lab} is {k}." if style == 0 else f"The code of {lab} is {k}. Remember it."]
                last = c
            parts += f[last:]
            if style == 0:
                parts += [f"What is the pass key for {labs[q]}? The pass key for {labs[q]} is {keys[q]}."]
            else:
                parts += [f"What is the code of {labs[q]}? The code of {labs[q]} is {keys[q]}."]
            return " ".join(parts)

        toks = self.fit_text(rng, build, L)
        return self.finish(rng, toks, L, [])

    def kv(self, rng, L):
        style = int(rng.integers(0, 3))
        n = int(rng.integers(3, max(4, min(30, L // 16))))
        keys = [str(x) for x in rng.choice(NAMES, min(n, len(NAMES)), replace=False)]
        vals = [rand_key(rng, str(rng.choice(["d5", "dn", "alnum"]))) for _ in keys]
        q = int(rng.integers(0, len(keys)))
        if style == 0:
            lines = ["Here is a list of records."] + [f"{k}: {v}" for k, v in zip(keys, vals)]
            text = "\n".join(lines) + f"\nWhat is the value for {keys[q]}? {keys[q]}: {vals[q]}"
            toks = self.enc(text)[: L - 1]
            return self.finish(rng, toks, L, [])
        if style == 1:
            pairs = ", ".join(f"{k} = {v}" for k, v in zip(keys, vals))
            text = f"Values: {pairs}. Query: {keys[q]} = {vals[q]}"
            toks = self.enc(text)[: L - 1]
            return self.finish(rng, toks, L, [])
        fill = self.filler(rng, L)
        depths = sorted(rng.random(len(keys)))

        def build(drop):
            f = fill[: max(0, len(fill) - drop)]
            cuts = [int(round(d * len(f))) for d in depths]
            parts, last = [], 0
            for c, k, v in zip(cuts, keys, vals):
                parts += f[last:c] + [f"The number of {k} is {v}."]
                last = c
            parts += f[last:] + [f"What is the number of {keys[q]}? The number of {keys[q]} is {vals[q]}."]
            return " ".join(parts)

        toks = self.fit_text(rng, build, L)
        return self.finish(rng, toks, L, [])

    def copy_digits(self, rng, L):
        """Brown text with numbers (3..12 digits, one token each after a '▁' piece) that recur
        later. A digit is followed by different digits at different places of one number, so
        copying it takes more than the previous token to know where in the number it is: the
        hard case of the pass key, which plain random spans over 4,096 tokens rarely pose."""
        space = self.sp.piece_to_id("▁")
        digits = [self.sp.piece_to_id(str(d)) for d in range(10)]
        toks, ranges, seen = [], [], []
        while len(toks) < L - 1:
            toks += self.stream_window(rng, int(rng.integers(4, 40)))
            toks.append(space)
            if seen and rng.random() < 0.5:
                num = seen[int(rng.integers(0, len(seen)))]
                ranges.append((len(toks) + 1, len(toks) + len(num)))  # the first digit is a guess
            else:
                num = [digits[d] for d in rng.integers(0, 10, int(rng.integers(3, 13)))]
                seen.append(num)
            toks += num
        return self.finish(rng, toks[: L - 1], L, [r for r in ranges if r[1] <= L - 1])

    def sample(self, kind, rng, L):
        return getattr(self, kind)(rng, L)
