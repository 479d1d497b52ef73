#!/usr/bin/env python3
"""Second oracle for the `llama` (SentencePiece) tokenizer: real SentencePiece scores.

The transformers.js oracle checks SentencePiece-style vocabularies only through HF's
BPE-with-merges view (scores made from merge ranks). This script checks the score-driven
path against the sentencepiece library itself, on a real .model file (by default
engram-tiny's): it writes a vocab-only GGUF with the model's pieces, scores and types (as
tools/train/export_gguf.py does) and the ids sentencepiece gives for each corpus string
(no BOS; control-token texts stay plain text, so compare with `engram tokenize --no-bos`
without --parse-special). Invalid UTF-8 entries are decoded with errors="replace", which
like TextDecoder gives one U+FFFD per maximal ill-formed subpart.

Usage: python3 tools/tokenizer/spm_oracle.py [MODEL.model] [corpus.jsonl] [OUT_DIR] [NAME]
Writes OUT_DIR/NAME.gguf and OUT_DIR/expected_NAME.txt (NAME defaults to engram-tiny; the
committed fixtures are tests/fixtures/tokenizer/engram-tiny.gguf and
expected_engram-tiny.txt). Needs the sentencepiece module.
"""
import json
import os
import sys

import sentencepiece as spm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "py"))
from gguf_writer import GGUFWriter, T_FLOAT32, T_INT32, T_STRING  # noqa: E402


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "engram-tiny.tokenizer.model")
    corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.jsonl")
    out_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, "tests", "fixtures", "tokenizer")
    name = sys.argv[4] if len(sys.argv) > 4 else "engram-tiny"
    sp = spm.SentencePieceProcessor(model_file=model)

    w = GGUFWriter()
    w.add_string("general.name", os.path.basename(model))
    w.add_string("tokenizer.ggml.model", "llama")
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                     else 5 if sp.is_unused(i) else 1)
    w.add_array("tokenizer.ggml.tokens", T_STRING, tokens)
    w.add_array("tokenizer.ggml.scores", T_FLOAT32, scores)
    w.add_array("tokenizer.ggml.token_type", T_INT32, types)
    w.add_u32("tokenizer.ggml.bos_token_id", sp.bos_id())
    w.add_u32("tokenizer.ggml.eos_token_id", sp.eos_id())
    w.add_u32("tokenizer.ggml.unknown_token_id", sp.unk_id())
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.write(os.path.join(out_dir, name + ".gguf"))

    lines = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            it = json.loads(line)
            text = bytes.fromhex(it["hex"]).decode("utf-8", errors="replace") if "hex" in it else it["s"]
            lines.append(" ".join(str(i) for i in sp.encode(text)))
    with open(os.path.join(out_dir, f"expected_{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{name}: {len(lines)} strings -> {out_dir}/expected_{name}.txt", file=sys.stderr)


if __name__ == "__main__":
    main()
