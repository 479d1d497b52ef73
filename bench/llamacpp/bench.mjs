#!/usr/bin/env node
// llama.cpp side of engram's speed comparison (issue 2, acceptance item 5).
//
// Loads a GGUF with node-llama-cpp's prebuilt CPU binary (offline: getLlama({gpu: false,
// build: "never"})), then times
//   * prefill: evaluateWithoutGeneratingNewTokens on a P-token prompt (default 512) in a
//     fresh sequence, best and median of R runs after one warm-up;
//   * decode: N single-token steps with greedy sampling (default 128) from an empty context
//     (or after K prompt tokens with --decode-ctx K);
//   * with --sequences S > 1, also S sequences decoding N tokens each at the same time in one
//     context (node-llama-cpp batches the sequences' pending tokens into one llama_decode per
//     step, as a server with S slots does): total tokens/s over all sequences.
// and prints one JSON object. Benchmark-only tooling: never a dependency of the product.
//
//   cd bench/llamacpp && npm install --omit=optional --ignore-scripts   # once
//   node bench/llamacpp/bench.mjs -m build/bench/bench-125m-f16.gguf [-t 2] [-p 512] [-n 128] [-r 3]
//        [--decode-ctx K] [--sequences S] [--flash-attn auto|on|off] [--kv f16|f32|q8_0]
//
// Prompt tokens are a fixed pseudo-random sequence (BOS first) over the model's vocabulary,
// so engram can be timed on the very same ids.
import fs from "node:fs";
import os from "node:os";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function usage(msg) {
    if (msg) console.error(`bench.mjs: ${msg}`);
    console.error("usage: node bench.mjs -m MODEL.gguf [-t THREADS] [-p PROMPT_TOKENS] [-n DECODE_TOKENS] " +
        "[-r RUNS] [--decode-ctx K] [--sequences S] [--flash-attn auto|on|off] [--kv f16|f32|q8_0]");
    process.exit(2);
}

function parseArgs(argv) {
    const a = {model: null, threads: 2, prompt: 512, decode: 128, decodeCtx: 0, runs: 3, sequences: 1, flashAttn: "auto", kv: "f16"};
    const num = (v, name) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n <= 0) usage(`${name} wants a positive integer, got '${v}'`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i], v = argv[i + 1];
        switch (k) {
            case "-m": case "--model": a.model = v; i++; break;
            case "-t": case "--threads": a.threads = num(v, k); i++; break;
            case "-p": case "--prompt": a.prompt = num(v, k); i++; break;
            case "-n": case "--decode": a.decode = num(v, k); i++; break;
            case "-r": case "--runs": a.runs = num(v, k); i++; break;
            case "--decode-ctx": a.decodeCtx = v === "0" ? 0 : num(v, k); i++; break;
            case "--sequences": a.sequences = num(v, k); i++; break;
            case "--flash-attn":
                if (!["auto", "on", "off"].includes(v)) usage(`--flash-attn wants auto|on|off, got '${v}'`);
                a.flashAttn = v; i++; break;
            case "--kv":
                if (!["f16", "f32", "q8_0"].includes(v)) usage(`--kv wants f16|f32|q8_0, got '${v}'`);
                a.kv = v; i++; break;
            case "-h": case "--help": usage();
            default: usage(`unknown argument '${k}'`);
        }
    }
    if (!a.model) usage("no model given (-m)");
    if (!fs.existsSync(a.model)) usage(`model file '${a.model}' does not exist`);
    return a;
}

// Deterministic token ids (xorshift32), avoiding the first 259 ids (specials and byte
// tokens of a llama vocabulary) when the vocabulary is large enough.
function promptTokens(n, nVocab, bos) {
    const lo = nVocab > 1024 ? 259 : 3;
    let s = 0x2545F491;
    const out = [bos ?? 1];
    while (out.length < n) {
        s ^= s << 13; s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5; s >>>= 0;
        out.push(lo + (s % (nVocab - lo)));
    }
    return out;
}

const median = (xs) => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const args = parseArgs(process.argv.slice(2));
const loadAvgStart = os.loadavg()[0];
const llama = await getLlama({gpu: false, build: "never", maxThreads: args.threads, logLevel: LlamaLogLevel.error});
const tLoad = performance.now();
const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
const loadMs = performance.now() - tLoad;
const kvType = {f16: "F16", f32: "F32", q8_0: "Q8_0"}[args.kv];
const context = await model.createContext({
    // one sequence's worth of cells per sequence (the KV cache is shared between them)
    contextSize: (Math.max(args.prompt, args.decodeCtx) + args.decode + 16) * args.sequences,
    batchSize: args.prompt,  // the whole prompt is one batch, as llama-bench's pp test does
    threads: args.threads,
    sequences: args.sequences,
    flashAttention: args.flashAttn === "auto" ? "auto" : args.flashAttn === "on",
    experimentalKvCacheKeyType: kvType,
    experimentalKvCacheValueType: kvType,
});
const seq = context.getSequence();
// The vocabulary size from the file's own token list (node-llama-cpp 3.22 exposes no
// vocabulary size on model.tokens; a wrong guess sends ids the model does not have).
const nVocab = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? 32000;
// One more than the decode depth, so decoding at any depth starts from a prompt token.
const allTokens = promptTokens(Math.max(args.prompt, args.decodeCtx + 1), nVocab, model.tokens.bos);
const tokens = allTokens.slice(0, args.prompt);

// Warm-up (page in the weights, let the thread pool spin up), not timed.
await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(0, Math.min(64, tokens.length)));
await seq.clearHistory();

const prefillMs = [];
for (let r = 0; r < args.runs; r++) {
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(tokens);
    prefillMs.push(performance.now() - t0);
}

// Decode: as llama-bench's tg test and `engram bench`, from an empty context by default
// (--decode-ctx K first puts K prompt tokens in the cache, untimed). Every step is one token
// in, logits over the whole vocabulary, greedy pick.
await seq.clearHistory();
if (args.decodeCtx > 0) await seq.evaluateWithoutGeneratingNewTokens(allTokens.slice(0, args.decodeCtx));
let produced = 0;
const t0 = performance.now();
for await (const _tok of seq.evaluate([allTokens[args.decodeCtx]], {temperature: 0, yieldEogToken: true})) {
    if (++produced >= args.decode) break;
}
const decodeMs = performance.now() - t0;

// S sequences at once: each starts from its own first token (so they do not share a prefix)
// and decodes N tokens greedily; all evaluate() loops run concurrently, and node-llama-cpp
// gathers their pending tokens into one batch per step.
let parallel = null;
if (args.sequences > 1) {
    await seq.clearHistory();
    const seqs = [seq];
    for (let i = 1; i < args.sequences; i++) seqs.push(context.getSequence());
    const counts = new Array(seqs.length).fill(0);
    const tp = performance.now();
    await Promise.all(seqs.map(async (s, i) => {
        for await (const _tok of s.evaluate([tokens[1 + i]], {temperature: 0, yieldEogToken: true})) {
            if (++counts[i] >= args.decode) break;
        }
    }));
    const ms = performance.now() - tp;
    const total = counts.reduce((x, y) => x + y, 0);
    parallel = {
        sequences: seqs.length,
        tokens_per_sequence: counts,
        total_ms: +ms.toFixed(2),
        total_tokens_per_s: +(total / (ms / 1000)).toFixed(2),
    };
}

const bestPrefill = Math.min(...prefillMs);
const result = {
    engine: "llama.cpp",
    via: "node-llama-cpp " + JSON.parse(fs.readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url))).version,
    llama_cpp_release: llama.llamaCppRelease,
    build: llama.buildType,
    system_info: llama.systemInfo,
    model: args.model,
    model_bytes: fs.statSync(args.model).size,
    threads: context.currentThreads ?? args.threads,
    flash_attention: args.flashAttn,
    kv_cache_type: args.kv,
    load_ms: +loadMs.toFixed(1),
    // ggml threads spin at barriers: with other jobs on the cores (load average above the
    // core count) decode collapses by 10x or more. Only compare runs made on a quiet machine.
    loadavg_1m_at_start: +loadAvgStart.toFixed(2),
    cpus: os.cpus().length,
    prefill: {
        tokens: args.prompt,
        runs_ms: prefillMs.map((x) => +x.toFixed(2)),
        best_tokens_per_s: +(args.prompt / (bestPrefill / 1000)).toFixed(2),
        median_tokens_per_s: +(args.prompt / (median(prefillMs) / 1000)).toFixed(2),
    },
    decode: {
        tokens: produced,
        context_before: args.decodeCtx,
        total_ms: +decodeMs.toFixed(2),
        tokens_per_s: +(produced / (decodeMs / 1000)).toFixed(2),
    },
    ...(parallel ? {parallel_decode: parallel} : {}),
};
console.log(JSON.stringify(result, null, 1));
await context.dispose();
await model.dispose();
