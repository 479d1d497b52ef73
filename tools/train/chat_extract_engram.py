#!/usr/bin/env python3
"""Extraction (acceptance 3) decoded by engram itself under the JSON-schema constraint: `engram serve`
with the chat model, one request per held-out conversation of chat_eval.py's extraction trials (the
same generator, seed and order), temperature 0, response_format json_schema =
tools/train/extract_schema.json; the replies are scored as chat_eval.eval_extract scores them and,
with --compare, set beside PyTorch's greedy decoding under chat_eval.ExtractionConstraint (the
same schema as a character automaton), reply by reply.

Usage: /usr/bin/python3 tools/train/chat_extract_engram.py --engram build-chatmodel/engram
           [--model models/engram-tiny-chat.gguf] [--n 100] [--compare] [--out FILE]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import sentencepiece as spm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from chat_data import ChatGen  # noqa: E402
from chat_eval import ExtractionConstraint, Generator, decode, greedy_constrained, mentions, summary_true  # noqa: E402
from finetune_text import model_from_gguf  # noqa: E402
from tasks import split_sentences  # noqa: E402


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engram", default=os.path.join(ROOT, "build-chatmodel", "engram"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "engram-tiny-chat.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build-chatmodel", "data"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--port", type=int, default=18931)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    schema = json.load(open(os.path.join(HERE, "extract_schema.json")))
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    with open(os.path.join(a.data, "heldout.txt"), encoding="utf-8") as f:
        sents = [s for doc in f.read().split("\n\n") for s in split_sentences(doc)]
    chat = ChatGen(sp, sents, "heldout")
    rng = np.random.Generator(np.random.PCG64([2026, 2]))  # chat_eval.py's extraction trials
    convs = []
    for _ in range(a.n):
        while True:
            msgs, facts, mems = chat.extract(rng, n_facts=int(rng.integers(1, 5)))
            if len(chat.encode_messages(msgs)[0]) <= 512:
                break
        convs.append((msgs, facts))
    if a.compare:
        model, _ = model_from_gguf(a.model)
        model.eval()
        g = Generator(model, chat.im_end)
        con = ExtractionConstraint(sp, chat.im_end)
    srv = subprocess.Popen([a.engram, "serve", "-m", a.model, "--port", str(a.port), "-t", "1", "--parallel", "1",
                            "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{a.port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        stated = found = n_sum = true_sum = valid = same = 0
        rows = []
        for msgs, facts in convs:
            body = dict(messages=[dict(role=r, content=c) for r, c in msgs[:-1]], temperature=0, max_tokens=300,
                        response_format=dict(type="json_schema", json_schema=dict(name="extraction", schema=schema)))
            reply = post(a.port, body)["choices"][0]["message"]["content"]
            try:
                sums = [str(m["summary"]) for m in json.loads(reply)["extracted_memories"]]
                valid += 1
            except (ValueError, KeyError, TypeError):
                sums = re.findall(r'"summary": "([^"]*)"', reply)
            stated += len(facts)
            found += sum(any(mentions(s, f.value) for s in sums) for f in facts)
            n_sum += len(sums)
            true_sum += sum(summary_true(s, facts) for s in sums)
            row = dict(engram=reply)
            if a.compare:
                ref = decode(sp, greedy_constrained(g, sp, chat.prompt_ids(msgs), con), chat.im_end)
                row["pytorch"] = ref
                same += ref.strip() == reply.strip()
            rows.append(row)
    finally:
        srv.terminate()
        srv.wait()
    res = dict(model=os.path.relpath(a.model, ROOT), decoder="engram serve, response_format json_schema",
               n=a.n, facts_stated=stated, fact_recall=found / max(1, stated), summaries=n_sum,
               summary_precision=true_sum / max(1, n_sum), valid_json=valid / a.n)
    if a.compare:
        res["equal_to_pytorch_constrained"] = same
    print(json.dumps(res, indent=1))
    if a.out:
        json.dump(dict(res, replies=rows), open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
