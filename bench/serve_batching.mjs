#!/usr/bin/env node
// Does batching pay? Decode throughput of `engram serve --parallel C` for one client and for C
// concurrent clients, and llama.cpp decoding C sequences at once on the same GGUF in the same
// run (bench/llamacpp/bench.mjs --sequences C), as issue 16 asks.
//
//   node bench/serve_batching.mjs -m build/bench/bench-1.1b-q4_k.gguf [--bin build/engram]
//        [-t 2] [-c 8] [-n 128] [-r 3] [--no-llamacpp]
//
// Each client sends one /v1/completions request (a short distinct prompt, greedy, max_tokens
// N) and the figure is completion tokens over wall time, all clients together; the median of
// R runs is reported. The prompts are a few tokens, so the time is decode. Prints one JSON
// object and a Markdown table. Measure on a quiet machine: other jobs on the two cores make
// every figure here worthless (see bench/llamacpp/README.md).
import {spawn, spawnSync} from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

function usage(msg) {
    if (msg) console.error(`serve_batching.mjs: ${msg}`);
    console.error("usage: node bench/serve_batching.mjs -m MODEL.gguf [--bin ENGRAM] [-t THREADS] " +
        "[-c CLIENTS] [-n TOKENS] [-r RUNS] [--no-llamacpp]");
    process.exit(2);
}

function parseArgs(argv) {
    const a = {model: null, bin: path.join(ROOT, "build/engram"), threads: 2, clients: 8, tokens: 128,
        runs: 3, llamacpp: true};
    const num = (v, k) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n <= 0) usage(`${k} wants a positive integer, got '${v}'`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i], v = argv[i + 1];
        switch (k) {
            case "-m": case "--model": a.model = v; i++; break;
            case "--bin": a.bin = v; i++; break;
            case "-t": case "--threads": a.threads = num(v, k); i++; break;
            case "-c": case "--clients": a.clients = num(v, k); i++; break;
            case "-n": case "--tokens": a.tokens = num(v, k); i++; break;
            case "-r": case "--runs": a.runs = num(v, k); i++; break;
            case "--no-llamacpp": a.llamacpp = false; break;
            case "-h": case "--help": usage();
            default: usage(`unknown argument '${k}'`);
        }
    }
    if (!a.model) usage("no model given (-m)");
    if (!fs.existsSync(a.model)) usage(`model file '${a.model}' does not exist`);
    if (!fs.existsSync(a.bin)) usage(`engram binary '${a.bin}' does not exist (--bin)`);
    return a;
}

const median = (xs) => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => {
            const {port} = s.address();
            s.close(() => resolve(port));
        });
    });
}

async function startServer(a) {
    const port = await freePort();
    // Only /v1/completions is used, so the chat template never renders; the random-weight
    // bench models carry none, and the server wants one.
    const child = spawn(a.bin, ["serve", "-m", a.model, "--port", String(port), "-t", String(a.threads),
        "--parallel", String(a.clients), "--chat-template", "chatml", "-q"], {stdio: ["ignore", "ignore", "pipe"]});
    let log = "";
    child.stderr.on("data", (d) => (log += d.toString()));
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 300000;  // a 1B model takes a while to map and repack
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`engram serve exited: ${log}`);
        try {
            if ((await fetch(`${base}/health`)).status === 200) return {child, base};
        } catch { /* not listening yet */ }
        await new Promise((r) => setTimeout(r, 200));
    }
    child.kill("SIGKILL");
    throw new Error(`engram serve did not become healthy in 300 s: ${log}`);
}

// One client's request: completion tokens it got.
async function complete(base, prompt, maxTokens) {
    const r = await fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({prompt, max_tokens: maxTokens, temperature: 0}),
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(body)}`);
    return body.usage.completion_tokens;
}

const words = ["river", "stone", "winter", "market", "lantern", "harbor", "meadow", "candle", "orchard",
    "signal", "garden", "thunder"];
const promptOf = (i) => `${words[i % words.length]} ${words[(i * 7 + 3) % words.length]} and the`;

async function timeClients(base, n, tokens) {
    const t0 = performance.now();
    const counts = await Promise.all(Array.from({length: n}, (_, i) => complete(base, promptOf(i), tokens)));
    const s = (performance.now() - t0) / 1000;
    const total = counts.reduce((x, y) => x + y, 0);
    return {tokens: counts, seconds: +s.toFixed(3), tokens_per_s: +(total / s).toFixed(2)};
}

const a = parseArgs(process.argv.slice(2));
const result = {model: a.model, model_bytes: fs.statSync(a.model).size, threads: a.threads, clients: a.clients,
    tokens_per_client: a.tokens, runs: a.runs, loadavg_1m_at_start: +os.loadavg()[0].toFixed(2),
    cpus: os.cpus().length};

const server = await startServer(a);
try {
    await complete(server.base, "warm up", 8);  // page the weights in
    const one = [], many = [];
    for (let r = 0; r < a.runs; r++) {
        one.push(await timeClients(server.base, 1, a.tokens));
        many.push(await timeClients(server.base, a.clients, a.tokens));
    }
    result.engram = {
        one_client: {runs: one, median_tokens_per_s: median(one.map((x) => x.tokens_per_s))},
        clients: {runs: many, median_tokens_per_s: median(many.map((x) => x.tokens_per_s))},
    };
    result.engram.speedup = +(result.engram.clients.median_tokens_per_s /
        result.engram.one_client.median_tokens_per_s).toFixed(2);
} finally {
    server.child.kill("SIGTERM");
}

if (a.llamacpp) {
    // The same number of tokens per sequence, C sequences in one context, median of R runs.
    const runs = [];
    for (let r = 0; r < a.runs; r++) {
        const p = spawnSync("node", [path.join(ROOT, "bench/llamacpp/bench.mjs"), "-m", a.model, "-t",
            String(a.threads), "-p", "16", "-n", String(a.tokens), "-r", "1", "--sequences", String(a.clients)],
        {encoding: "utf8", maxBuffer: 1 << 24});
        if (p.status !== 0) throw new Error(`bench.mjs failed: ${p.stderr}`);
        const j = JSON.parse(p.stdout);
        runs.push({one_sequence_tokens_per_s: j.decode.tokens_per_s,
            sequences_tokens_per_s: j.parallel_decode.total_tokens_per_s,
            tokens_per_sequence: j.parallel_decode.tokens_per_sequence});
        result.llamacpp_release = j.llama_cpp_release;
    }
    result.llamacpp = {runs,
        one_sequence_median_tokens_per_s: median(runs.map((x) => x.one_sequence_tokens_per_s)),
        sequences_median_tokens_per_s: median(runs.map((x) => x.sequences_tokens_per_s))};
    result.engram_over_llamacpp = +(result.engram.clients.median_tokens_per_s /
        result.llamacpp.sequences_median_tokens_per_s).toFixed(2);
}

console.log(JSON.stringify(result, null, 1));
const e = result.engram, l = result.llamacpp;
console.log(`\n| model | engram 1 client | engram ${a.clients} clients | speedup |` +
    (l ? ` llama.cpp 1 seq | llama.cpp ${a.clients} seqs | engram/llama.cpp |` : ""));
console.log("|---|---|---|---|" + (l ? "---|---|---|" : ""));
console.log(`| ${path.basename(a.model)} | ${e.one_client.median_tokens_per_s} | ${e.clients.median_tokens_per_s} | ` +
    `${e.speedup}x |` + (l ? ` ${l.one_sequence_median_tokens_per_s} | ${l.sequences_median_tokens_per_s} | ` +
    `${result.engram_over_llamacpp}x |` : ""));
