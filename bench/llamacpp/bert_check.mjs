#!/usr/bin/env node
// Cross-check of the `bert` golden fixtures against llama.cpp (node-llama-cpp's prebuilt CPU
// binary): llama.cpp reads the fixture GGUF, embeds each case's reference token ids, and its
// pooled vector (L2-normalised here) is compared with the PyTorch reference's. llama.cpp's
// GELU is the tanh approximation, BERT's (and the reference's, and engram's) the erf form, so
// small differences are expected; a wrong tensor layout or pooling would show as large ones.
// Also compares llama.cpp's own tokenization of each text with the reference ids.
//
//   node bench/llamacpp/bert_check.mjs tests/fixtures/golden/bert_*_f32.json
import fs from "node:fs";
import path from "node:path";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const files = process.argv.slice(2);
if (files.length === 0) {
    console.error("usage: node bert_check.mjs FIXTURE.json [...]");
    process.exit(2);
}
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
for (const sidecar of files) {
    const meta = JSON.parse(fs.readFileSync(sidecar, "utf8"));
    const model = await llama.loadModel({modelPath: path.join(path.dirname(sidecar), meta.model),
                                         gpuLayers: 0});
    const ctx = await model.createEmbeddingContext({contextSize: meta.hparams.n_ctx, threads: 2});
    let maxAbs = 0, compared = 0, tokensAgree = 0, tokensCompared = 0;
    const tokenMismatches = [];
    for (const c of meta.cases) {
        if (!c.truncated && c.ids.length < meta.hparams.n_ctx) {
            const e = await ctx.getEmbeddingFor(c.ids);
            const v = Array.from(e.vector);
            const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
            for (let i = 0; i < v.length; i++)
                maxAbs = Math.max(maxAbs, Math.abs(v[i] / norm - c.embedding[i]));
            compared++;
        }
        const ids = model.tokenize(c.text, false);
        const framed = [meta.cases[0].ids[0], ...ids, meta.cases[0].ids.at(-1)];
        tokensCompared++;
        if (JSON.stringify(framed) === JSON.stringify(c.ids)) tokensAgree++;
        else tokenMismatches.push({text: c.text.slice(0, 40), llamacpp: framed, reference: c.ids});
    }
    console.log(JSON.stringify({model: meta.model, pooling: meta.pooling, compared,
                                max_abs_diff: maxAbs, tokens_agree: `${tokensAgree}/${tokensCompared}`,
                                token_mismatches: tokenMismatches}));
    await ctx.dispose();
    await model.dispose();
}
