#!/usr/bin/env node
// Cross-check of engram's golden reference against llama.cpp (through node-llama-cpp's
// prebuilt CPU binary): evaluates the fixture's prompt one batch at a time, collects the raw
// logits llama.cpp produces at every position and compares them with NAME.logits.bin.
//
//   node bench/llamacpp/logits.mjs tests/fixtures/golden/llama_f32.json [--threads 2]
//
// Prints one JSON line: max abs diff over all positions/vocab, argmax agreement, and per-
// position worst diff summary. Benchmark/test tooling only, never a product dependency.
import fs from "node:fs";
import path from "node:path";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function parseArgs(argv) {
    const args = {threads: 2, files: []};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--threads") args.threads = Number(argv[++i]);
        else args.files.push(a);
    }
    if (args.files.length === 0) {
        console.error("usage: node logits.mjs FIXTURE.json [FIXTURE.json ...] [--threads N]");
        process.exit(2);
    }
    return args;
}

const args = parseArgs(process.argv.slice(2));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
let allOk = true;
for (const sidecar of args.files) {
    const dir = path.dirname(sidecar);
    const meta = JSON.parse(fs.readFileSync(sidecar, "utf8"));
    const [nTok, nVocab] = meta.shape;
    const buf = fs.readFileSync(path.join(dir, meta.logits));
    const ref = new Float32Array(buf.buffer, buf.byteOffset, nTok * nVocab);

    const model = await llama.loadModel({modelPath: path.join(dir, meta.model), gpuLayers: 0});
    // f32 KV cache: llama.cpp defaults to f16 K/V, which alone moves logits by ~1e-2.
    const context = await model.createContext({
        contextSize: 256, batchSize: 256, threads: args.threads, sequences: 1, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = context.getSequence();
    const input = meta.prompt.map((t) => [t, {generateNext: {logits: true}}]);
    const out = await seq.controlledEvaluate(input);

    let maxAbs = 0, argmaxAgree = 0, worstPos = -1;
    for (let t = 0; t < nTok; t++) {
        const logits = out[t]?.next?.logits;
        if (!logits) throw new Error(`${meta.model}: no logits at position ${t}`);
        let bestRef = 0, bestCpp = 0;
        for (let v = 0; v < nVocab; v++) {
            const r = ref[t * nVocab + v];
            const c = logits.get(v);
            if (c === undefined) throw new Error(`${meta.model}: logit ${v} missing at ${t}`);
            const d = Math.abs(r - c);
            if (d > maxAbs) { maxAbs = d; worstPos = t; }
            if (r > ref[t * nVocab + bestRef]) bestRef = v;
            if (c > logits.get(bestCpp)) bestCpp = v;
        }
        if (bestRef === bestCpp) argmaxAgree++;
    }
    const ok = maxAbs <= meta.tolerance_max_abs;
    allOk &&= ok;
    console.log(JSON.stringify({
        model: meta.model, positions: nTok, vocab: nVocab, max_abs_diff: maxAbs, worst_position: worstPos,
        argmax_agree: `${argmaxAgree}/${nTok}`, tolerance: meta.tolerance_max_abs, within_tolerance: ok,
    }));
    await context.dispose();
    await model.dispose();
}
process.exit(allOk ? 0 : 1);
