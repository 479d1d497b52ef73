#!/usr/bin/env node
// Side-by-side speed of engram and llama.cpp on the same GGUF files in one run (issue 2,
// acceptance item 5; issue 20: long prompts and decode deep in the context). For every model
// and run it runs `engram bench --json` and bench.mjs (llama.cpp through node-llama-cpp) one
// after the other, then prints the raw JSON of every run and a Markdown table of the medians
// over the runs for docs/BENCHMARKS.md.
//
//   node bench/llamacpp/compare.mjs [--engram build/engram] [-t 2] [-p 512[,4096...]] [-n 128]
//        [--depth K] [--runs R] [--flash-attn on|off|auto] MODEL.gguf...
//
// -p: prefill sizes (each one batch in llama.cpp, chunks of 512 in engram). --depth K also times
// -n decode steps after K cached prompt tokens (engram --decode-ctx, bench.mjs --decode-ctx).
// --runs R (default 3): the pair is run R times, interleaved, and each figure is the median.
// --flash-attn (default on): llama.cpp's flash attention.
//
// Acceptance (issue 2): engram prefill >= 0.5x llama.cpp; engram decode roofline (weight
// bytes x tokens/s / bandwidth measured by `engram bench` in the same run) >= 0.70.
// Issue 20: prefill 4096 and decode at depth 4096 >= 1.0x llama.cpp with flash attention on.
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

function usage(msg) {
    if (msg) console.error(`compare.mjs: ${msg}`);
    console.error("usage: node compare.mjs [--engram PATH] [-t THREADS] [-p PROMPT[,PROMPT...]] [-n DECODE] " +
        "[--depth K] [--runs R] [--flash-attn on|off|auto] MODEL.gguf [MODEL.gguf ...]");
    process.exit(2);
}

const a = {engram: path.join(repo, "build", "engram"), threads: 2, prompts: [512], decode: 128, depth: 0, runs: 3,
    flashAttn: "on", models: []};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === "--engram") { a.engram = v; i++; }
    else if (k === "-t") { a.threads = Number(v); i++; }
    else if (k === "-p") { a.prompts = String(v).split(",").map(Number); i++; }
    else if (k === "-n") { a.decode = Number(v); i++; }
    else if (k === "--depth") { a.depth = Number(v); i++; }
    else if (k === "--runs") { a.runs = Number(v); i++; }
    else if (k === "--flash-attn") {
        if (!["auto", "on", "off"].includes(v)) usage(`--flash-attn wants auto|on|off, got '${v}'`);
        a.flashAttn = v; i++;
    }
    else if (k.startsWith("-")) usage(`unknown argument '${k}'`);
    else a.models.push(k);
}
if (a.models.length === 0) usage("no model given");
for (const n of [a.threads, ...a.prompts, a.decode, a.runs]) if (!Number.isInteger(n) || n <= 0) usage("-t/-p/-n/--runs want positive integers");
if (!Number.isInteger(a.depth) || a.depth < 0) usage("--depth wants an integer >= 0");
if (!fs.existsSync(a.engram)) usage(`engram binary '${a.engram}' not found (build it, or pass --engram)`);
for (const m of a.models) if (!fs.existsSync(m)) usage(`model '${m}' not found`);

const run = (cmd, args) => execFileSync(cmd, args, {encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"]});
const median = (xs) => {
    const s = xs.filter((x) => x !== undefined && !Number.isNaN(x)).sort((x, y) => x - y);
    if (s.length === 0) return NaN;
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const depths = a.depth > 0 ? [0, a.depth] : [0];

// One run of both engines on one model: {measure: [engram, llama.cpp]} in tokens/s.
function runOnce(m) {
    const load = os.loadavg()[0];
    const e = JSON.parse(run(a.engram, ["bench", "-m", m, "--prefill", a.prompts.join(","), "--decode", String(a.decode),
        "--decode-ctx", depths.join(","), "--reps", "1", "-t", String(a.threads), "--json"]));
    const bench = (p, ctx) => JSON.parse(run(process.execPath, [path.join(here, "bench.mjs"), "-m", m, "-t", String(a.threads),
        "-p", String(p), "-n", String(a.decode), "-r", "1", "--decode-ctx", String(ctx), "--flash-attn", a.flashAttn]));
    const l = {prefill: {}, decode: {}, raw: [], load: load};
    // Each prompt size is one llama.cpp process; the decode at depth K rides on the one whose
    // prompt is K when there is one.
    const plans = a.prompts.map((p, i) => ({p, ctx: i === 0 ? 0 : -1}));
    for (const d of depths) {
        const same = plans.find((x) => x.p === d && x.ctx === -1);
        if (d === 0) continue;
        if (same) same.ctx = d;
        else plans.push({p: d, ctx: d, prefillUnused: true});
    }
    for (const plan of plans) {
        const r = bench(plan.p, Math.max(0, plan.ctx));
        l.raw.push(r);
        l.load = Math.max(l.load, r.loadavg_1m_at_start);
        if (!plan.prefillUnused) l.prefill[plan.p] = r.prefill.best_tokens_per_s;
        if (plan.ctx >= 0) l.decode[plan.ctx] = r.decode.tokens_per_s;
    }
    const measures = {};
    for (const p of a.prompts) measures[`prefill ${p}`] = [e.prefill?.[String(p)], l.prefill[p]];
    for (const d of depths) measures[`decode ${a.decode} at depth ${d}`] = [e.decode_at?.[String(d)], l.decode[d]];
    return {measures, roofline: e.decode_roofline_ratio, bw: e.bandwidth_bytes_per_s / 1e9, load: Math.max(l.load, os.loadavg()[0]),
        raw: {engram: e, llamacpp: l.raw}};
}

const rows = [];
const raw = [];
for (const m of a.models) {
    const runs = [];
    for (let r = 0; r < a.runs; r++) runs.push(runOnce(m));  // each run: engram, then llama.cpp
    raw.push({model: m, runs: runs.map((x) => x.raw)});
    for (const key of Object.keys(runs[0].measures)) {
        const eng = median(runs.map((x) => x.measures[key][0]));
        const lcp = median(runs.map((x) => x.measures[key][1]));
        rows.push({model: path.basename(m), mib: (fs.statSync(m).size / 2 ** 20).toFixed(1), key, eng, lcp,
            ratio: eng / lcp, loads: runs.map((x) => x.load)});
    }
    rows.push({model: path.basename(m), key: "decode roofline (weights x tok/s / bandwidth)", roofline: median(runs.map((x) => x.roofline)),
        bw: median(runs.map((x) => x.bw)), loads: runs.map((x) => x.load)});
}

console.log(JSON.stringify({threads: a.threads, prompts: a.prompts, decode: a.decode, depth: a.depth, runs: a.runs,
    flash_attention: a.flashAttn, cpu: os.cpus()[0]?.model, results: raw}, null, 1));
const f = (x, d = 1) => (x === undefined || Number.isNaN(x) ? "n/a" : x.toFixed(d));
console.log(`\n${a.threads} threads, median of ${a.runs} runs, llama.cpp flash attention ${a.flashAttn}; ${os.cpus()[0]?.model ?? "unknown CPU"}\n`);
console.log("| model | MiB | measure | engram tok/s | llama.cpp tok/s | engram / llama.cpp | load avg of the runs |");
console.log("| --- | ---: | --- | ---: | ---: | ---: | --- |");
for (const r of rows) {
    const loads = r.loads.map((x) => f(x, 2)).join(", ");
    if (r.roofline !== undefined) {
        console.log(`| ${r.model} | | ${r.key} | ${f(r.roofline, 2)} (bandwidth ${f(r.bw, 2)} GB/s) | | | ${loads} |`);
    } else {
        console.log(`| ${r.model} | ${r.mib} | ${r.key} | ${f(r.eng)} | ${f(r.lcp)} | ${f(r.ratio, 2)} | ${loads} |`);
    }
}
console.log(`\nCommand: node bench/llamacpp/compare.mjs --engram ${a.engram} -t ${a.threads} -p ${a.prompts.join(",")} -n ${a.decode}` +
    `${a.depth ? ` --depth ${a.depth}` : ""} --runs ${a.runs} --flash-attn ${a.flashAttn} ${a.models.join(" ")}`);
