#!/usr/bin/env python3
"""engram itself against PyTorch on held-out conversations: `engram chat` (greedy, the GGUF's own
template) is fed the user turns of each conversation on stdin and answers every turn; PyTorch
(chat_eval.Generator over the same GGUF's weights) plays the same conversation, keeping its replies'
tokens as generated and encoding only the new turns, as engram's conversation engine does (a
reply's tokens need not be the canonical encoding of its text). The transcripts must be
equal. Conversations: multi-turn recall (facts, then a question), memory questions (the memory
block as --system), pass keys in 300 tokens of held-out Brown, chit-chat.

Usage: /usr/bin/python3 tools/train/chat_engram_check.py --engram build-chatmodel/engram
           [--model models/engram-tiny-chat.gguf] [--n 4]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import sentencepiece as spm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from chat_data import ChatGen  # noqa: E402
from chat_eval import Generator, decode  # noqa: E402
from finetune_text import model_from_gguf  # noqa: E402
from tasks import split_sentences  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engram", default=os.path.join(ROOT, "build-chatmodel", "engram"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "engram-tiny-chat.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build-chatmodel", "data"))
    ap.add_argument("--n", type=int, default=4, help="conversations of each kind")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    with open(os.path.join(a.data, "heldout.txt"), encoding="utf-8") as f:
        sents = [s for doc in f.read().split("\n\n") for s in split_sentences(doc)]
    chat = ChatGen(sp, sents, "heldout")
    model, _ = model_from_gguf(a.model)
    model.eval()
    g = Generator(model, chat.im_end)
    rng = np.random.Generator(np.random.PCG64([777]))
    convs = []
    for _ in range(a.n):
        msgs, _ = chat.recall(rng, n_facts=2, n_questions=1)
        convs.append(("recall", msgs))
        convs.append(("memory", chat.memory(rng, n_mem=5)[0]))
        convs.append(("passkey", chat.passkey(rng, n_tokens=300, key=str(rng.integers(10000, 100000)))[0]))
        convs.append(("chitchat", chat.chitchat(rng)))
    same, rows = 0, []
    for kind, msgs in convs:
        system = msgs[0][1] if msgs[0][0] == "system" else None
        users = [c for r, c in msgs if r == "user"]
        hist = [("system", system)] if system else []
        torch_replies, ids = [], None
        for u in users:
            hist.append(("user", u))
            if ids is None:
                ids = chat.encode_messages(hist, add_generation_prompt=True)[0]
            else:  # the engine keeps the reply's tokens as generated and encodes only the new text
                ids += (sp.encode("\n") + [chat.im_start] + sp.encode("user\n" + u) + [chat.im_end] + sp.encode("\n")
                        + [chat.im_start] + sp.encode("assistant\n"))
            out = g.greedy(ids, max_new=64)
            ids = ids + out
            reply = decode(sp, out, chat.im_end)
            torch_replies.append(reply)
            hist.append(("assistant", reply))
        cmd = [a.engram, "chat", "-m", a.model, "--temp", "0", "-n", "64", "-t", "1"]
        if system:
            cmd += ["--system", system]
        out = subprocess.run(cmd, input="\n".join(users) + "\n", capture_output=True, text=True, check=True).stdout
        engram_replies = out.rstrip("\n").split("\n")
        ok = engram_replies == torch_replies
        same += ok
        rows.append(dict(task=kind, user=users, torch=torch_replies, engram=engram_replies, equal=ok))
        print(f"{kind}: {'same' if ok else 'DIFFERENT'} {torch_replies[-1]!r} / {engram_replies[-1]!r}", flush=True)
        if not ok:
            print(f"  torch:  {torch_replies}\n  engram: {engram_replies}", flush=True)
    print(json.dumps(dict(conversations=len(convs), transcripts_equal=same)))


if __name__ == "__main__":
    main()
