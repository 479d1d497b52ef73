#!/usr/bin/env python3
"""Golden fixtures for models/engram-tiny-chat.gguf (acceptance 5): 20 held-out chat prompts and
their greedy continuations from the independent PyTorch reference (reference.py's RefModel, which
reads the GGUF's own weights, float32 compute, full recompute per token).

Each prompt is a conversation of chat_data.py's held-out split (4 recall, 4 memory, 3 extraction,
3 add/merge, 3 pass key in 150 tokens of held-out Brown, 3 chit-chat). The fixture keeps the
messages, the text CHAT_TEMPLATE renders, the token ids (BOS, control tokens split out, each text
fragment SentencePiece-encoded) and the continuation: greedy tokens up to and including
<|im_end|>, at most --max-new. tests/test_shipped_chat_model.cpp renders the messages with the
file's template, tokenizes them with engram's tokenizer and decodes greedily with engram.

Usage: /usr/bin/python3 tools/train/chat_fixtures.py [--model models/engram-tiny-chat.gguf]
"""
import argparse
import json
import os
import sys

import numpy as np
import sentencepiece as spm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from chat_data import ChatGen, IM_END, IM_START, render  # noqa: E402
from reference import RefModel  # noqa: E402
from tasks import split_sentences  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "engram-tiny-chat.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build-chatmodel", "data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "shipped_chat", "greedy.json"))
    ap.add_argument("--max-new", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = RefModel(a.model)
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())] + [IM_START, IM_END]
    assert pieces == list(model.tokens), "tokenizer model + control tokens differ from the GGUF vocabulary"
    im_end = len(pieces) - 1
    with open(os.path.join(a.data, "heldout.txt"), encoding="utf-8") as f:
        sents = [s for doc in f.read().split("\n\n") for s in split_sentences(doc)]
    chat = ChatGen(sp, sents, "heldout")
    rng = np.random.Generator(np.random.PCG64([5150]))
    convs = []
    for _ in range(4):
        convs.append(("recall", chat.recall(rng, n_facts=int(rng.integers(1, 4)), n_questions=1)[0]))
    for i in range(4):
        convs.append(("memory", chat.memory(rng, n_mem=5, holds=i < 3)[0]))
    for _ in range(3):
        convs.append(("extract", chat.extract(rng, n_facts=int(rng.integers(1, 3)))[0]))
    for i in range(3):
        convs.append(("addmerge", chat.addmerge(rng, n_mem=3, merge=i < 2)[0]))
    for _ in range(3):
        convs.append(("passkey", chat.passkey(rng, n_tokens=150, key=str(rng.integers(10000, 100000)))[0]))
    for _ in range(3):
        convs.append(("chitchat", chat.chitchat(rng)))
    out = []
    for i, (kind, msgs) in enumerate(convs):
        prompt_msgs = msgs[:-1]
        ids = chat.prompt_ids(msgs)
        gen, margins = list(ids), []
        while len(gen) - len(ids) < a.max_new:
            logits = model.forward(gen)[-1]
            top = torch.topk(logits, 2)
            margins.append(round(float(top.values[0] - top.values[1]), 5))
            gen.append(int(top.indices[0]))
            if gen[-1] == im_end:
                break
        cont = gen[len(ids):]
        text = sp.decode([t for t in cont if t < sp.get_piece_size()])
        out.append(dict(task=kind, messages=[dict(role=r, content=c) for r, c in prompt_msgs],
                        prompt_text=render(prompt_msgs, add_generation_prompt=True), prompt=ids,
                        continuation=cont, continuation_text=text, expected_reply=msgs[-1][1],
                        min_top2_margin=min(margins), top2_margins=margins))
        print(f"[{i}] {kind}: {len(ids)} tokens -> {text!r} (want {msgs[-1][1]!r}), min margin {min(margins):.3f}",
              flush=True)
    res = dict(model="models/engram-tiny-chat.gguf", dtype="float32 compute, F16 weights as stored",
               source="tools/train/chat_fixtures.py: held-out split of tools/train/chat_data.py, PCG64(5150)",
               sampling="greedy (argmax), full recompute, stops after <|im_end|> or max_new tokens",
               max_new=a.max_new, eog_token=im_end, prompts=out)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
