#!/usr/bin/env python3
"""Train engram-tiny's SentencePiece BPE tokenizer on the training split only.

4096 pieces: <unk>=0, <s>=1, </s>=2, 256 byte-fallback pieces <0x00>..<0xFF>, then BPE merges.
Digits are split one per token; normalisation is the identity (no NFKC) so that a
C++ SPM tokenizer driven only by the GGUF vocabulary reproduces it.

Usage: /usr/bin/python3 tools/train/train_tokenizer.py   (after prepare_data.py)
Writes models/engram-tiny.tokenizer.model (+ .vocab in build/).
"""
import os
import re
import shutil

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    train = os.path.join(ROOT, "build", "data", "train.txt")
    tokdir = os.path.join(ROOT, "build", "tok")
    os.makedirs(tokdir, exist_ok=True)
    # sentence-per-line input (SentencePiece skips lines longer than max_sentence_length)
    lines = []
    with open(train, encoding="utf-8") as f:
        for doc in f.read().split("\n\n"):
            for s in re.split(r"(?<=[.!?\"])\s+", doc.strip()):
                if s:
                    lines.append(s)
    inp = os.path.join(tokdir, "train_sentences.txt")
    with open(inp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    prefix = os.path.join(tokdir, "engram")
    spm.SentencePieceTrainer.train(
        input=inp, model_prefix=prefix, model_type="bpe", vocab_size=4096,
        byte_fallback=True, split_digits=True, character_coverage=1.0,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentence_length=16384, input_sentence_size=0, shuffle_input_sentence=False,
        num_threads=2, minloglevel=2,
    )
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    shutil.copy(prefix + ".model", os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    print("vocab", sp.get_piece_size(), [sp.id_to_piece(i) for i in range(0, 6)], [sp.id_to_piece(i) for i in range(259, 275)])
    print(sp.encode("The pass key is 12345. Remember it.\n\nWhat is the pass key?", out_type=str))


if __name__ == "__main__":
    main()
