#!/usr/bin/env python3
"""Export a train_chat.py checkpoint to models/engram-tiny-chat.gguf (llama architecture).

As export_gguf.py (2-D tensors F16, norms F32, the SentencePiece pieces as tokenizer.ggml.*), plus:
  - the pieces <|im_start|> (4096) and <|im_end|> (4097), token_type 3 (control);
  - eos_token_id = eot_token_id = <|im_end|>: a reply ends there (engram's Tokenizer::is_eog and
    llama.cpp both stop on EOS/EOT; </s>, still a control token, stays end-of-generation in engram);
  - tokenizer.chat_template: ChatML (chat_data.CHAT_TEMPLATE), BOS added by the engine
    (add_bos_token = true).

Usage: /usr/bin/python3 tools/train/export_chat_gguf.py --ckpt build-chatmodel/run/last.pt [--out models/engram-tiny-chat.gguf]
"""
import argparse
import os
import sys

import sentencepiece as spm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "py"))
from chat_data import CHAT_TEMPLATE, IM_END, IM_START  # noqa: E402
from gguf_writer import GGUFWriter, GGML_F16, GGML_F32, T_FLOAT32, T_INT32, T_STRING  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build-chatmodel", "run", "last.pt"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "engram-tiny-chat.gguf"))
    ap.add_argument("--name", default="engram-tiny-chat")
    a = ap.parse_args()

    ck = torch.load(a.ckpt, map_location="cpu")
    cfg = ck["cfg"]
    sd = {k: v.float().numpy() for k, v in ck["model"].items()}
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    n_sp = sp.get_piece_size()
    V = n_sp + 2
    assert V == cfg["vocab_size"], (V, cfg["vocab_size"])
    hd = cfg["dim"] // cfg["n_head"]

    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", a.name)
    w.add_string("general.description",
                 "engram's own small chat model: engram-tiny fine-tuned on synthetic conversations about a "
                 "user's facts (recall, memory answers with citations, extraction, add/merge); see docs/MODEL.md")
    w.add_string("general.license", "MIT")
    w.add_u32("general.alignment", 32)
    w.add_u32("general.file_type", 1)
    w.add_u32("llama.context_length", cfg["ctx"])
    w.add_u32("llama.embedding_length", cfg["dim"])
    w.add_u32("llama.block_count", cfg["n_layer"])
    w.add_u32("llama.feed_forward_length", cfg["ffn_dim"])
    w.add_u32("llama.attention.head_count", cfg["n_head"])
    w.add_u32("llama.attention.head_count_kv", cfg["n_head_kv"])
    w.add_f32("llama.rope.freq_base", cfg["rope_base"])
    w.add_u32("llama.rope.dimension_count", hd)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", cfg["norm_eps"])
    w.add_u32("llama.vocab_size", V)
    w.add_string("tokenizer.ggml.model", "llama")
    tokens, scores, types = [], [], []
    for i in range(n_sp):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        else:
            types.append(1)
    for t in (IM_START, IM_END):
        tokens.append(t)
        scores.append(0.0)
        types.append(3)
    im_end = n_sp + 1
    w.add_array("tokenizer.ggml.tokens", T_STRING, tokens)
    w.add_array("tokenizer.ggml.scores", T_FLOAT32, scores)
    w.add_array("tokenizer.ggml.token_type", T_INT32, types)
    w.add_u32("tokenizer.ggml.bos_token_id", sp.bos_id())
    w.add_u32("tokenizer.ggml.eos_token_id", im_end)
    w.add_u32("tokenizer.ggml.eot_token_id", im_end)
    w.add_u32("tokenizer.ggml.unknown_token_id", sp.unk_id())
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_string("tokenizer.chat_template", CHAT_TEMPLATE)

    w.add_tensor("token_embd.weight", sd["tok.weight"], GGML_F16)
    for n in range(cfg["n_layer"]):
        p = f"blocks.{n}."
        w.add_tensor(f"blk.{n}.attn_norm.weight", sd[p + "attn_norm.weight"], GGML_F32)
        w.add_tensor(f"blk.{n}.attn_q.weight", sd[p + "wq.weight"], GGML_F16)
        w.add_tensor(f"blk.{n}.attn_k.weight", sd[p + "wk.weight"], GGML_F16)
        w.add_tensor(f"blk.{n}.attn_v.weight", sd[p + "wv.weight"], GGML_F16)
        w.add_tensor(f"blk.{n}.attn_output.weight", sd[p + "wo.weight"], GGML_F16)
        w.add_tensor(f"blk.{n}.ffn_norm.weight", sd[p + "ffn_norm.weight"], GGML_F32)
        w.add_tensor(f"blk.{n}.ffn_gate.weight", sd[p + "w_gate.weight"], GGML_F16)
        w.add_tensor(f"blk.{n}.ffn_up.weight", sd[p + "w_up.weight"], GGML_F16)
        w.add_tensor(f"blk.{n}.ffn_down.weight", sd[p + "w_down.weight"], GGML_F16)
    w.add_tensor("output_norm.weight", sd["norm.weight"], GGML_F32)
    w.add_tensor("output.weight", sd["out.weight"], GGML_F16)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    w.write(a.out)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes), {sum(v.size for v in sd.values())} parameters, "
          f"step {ck.get('state', {}).get('step')}")


if __name__ == "__main__":
    main()
