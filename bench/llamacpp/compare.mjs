#!/usr/bin/env node
// Side-by-side speed of engram and llama.cpp on the same GGUF files in one run (issue 2,
// acceptance item 5). For every model it runs `engram bench --json` and bench.mjs (llama.cpp
// through node-llama-cpp) one after the other, then prints the raw JSON of both and a
// Markdown table for docs/BENCHMARKS.md.
//
//   node bench/llamacpp/compare.mjs [--engram build/engram] [-t 2] [-p 512] [-n 128] MODEL.gguf...
//
// Acceptance: engram prefill >= 0.5x llama.cpp; engram decode roofline (weight bytes x
// tokens/s / bandwidth measured by `engram bench` in the same run) >= 0.70.
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

function usage(msg) {
    if (msg) console.error(`compare.mjs: ${msg}`);
    console.error("usage: node compare.mjs [--engram PATH] [-t THREADS] [-p PROMPT] [-n DECODE] MODEL.gguf [MODEL.gguf ...]");
    process.exit(2);
}

const a = {engram: path.join(repo, "build", "engram"), threads: 2, prompt: 512, decode: 128, models: []};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === "--engram") { a.engram = v; i++; }
    else if (k === "-t") { a.threads = Number(v); i++; }
    else if (k === "-p") { a.prompt = Number(v); i++; }
    else if (k === "-n") { a.decode = Number(v); i++; }
    else if (k.startsWith("-")) usage(`unknown argument '${k}'`);
    else a.models.push(k);
}
if (a.models.length === 0) usage("no model given");
for (const n of [a.threads, a.prompt, a.decode]) if (!Number.isInteger(n) || n <= 0) usage("-t/-p/-n want positive integers");
if (!fs.existsSync(a.engram)) usage(`engram binary '${a.engram}' not found (build it, or pass --engram)`);
for (const m of a.models) if (!fs.existsSync(m)) usage(`model '${m}' not found`);

const run = (cmd, args) => execFileSync(cmd, args, {encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"]});
const rows = [];
const raw = [];
for (const m of a.models) {
    const load = os.loadavg()[0];
    const e = JSON.parse(run(a.engram, ["bench", "-m", m, "--prefill", String(a.prompt), "--decode", String(a.decode),
        "-t", String(a.threads), "--json"]));
    const l = JSON.parse(run(process.execPath, [path.join(here, "bench.mjs"), "-m", m, "-t", String(a.threads),
        "-p", String(a.prompt), "-n", String(a.decode)]));
    raw.push({model: m, engram: e, llamacpp: l});
    const ePrefill = e.prefill?.[String(a.prompt)];
    const lPrefill = l.prefill.best_tokens_per_s;
    rows.push({
        model: path.basename(m),
        mib: (fs.statSync(m).size / 2 ** 20).toFixed(1),
        ePrefill, lPrefill, prefillRatio: ePrefill / lPrefill,
        eDecode: e.decode, lDecode: l.decode.tokens_per_s,
        roofline: e.decode_roofline_ratio, bw: e.bandwidth_bytes_per_s / 1e9,
        load: Math.max(load, l.loadavg_1m_at_start),
    });
}

console.log(JSON.stringify({threads: a.threads, prompt: a.prompt, decode: a.decode, cpu: os.cpus()[0]?.model, results: raw}, null, 1));
const f = (x, d = 1) => (x === undefined || Number.isNaN(x) ? "n/a" : x.toFixed(d));
console.log(`\n${a.threads} threads, prefill ${a.prompt} tokens, decode ${a.decode} tokens; ${os.cpus()[0]?.model ?? "unknown CPU"}\n`);
console.log("| model | MiB | engram prefill tok/s | llama.cpp prefill tok/s | ratio (>= 0.5) | engram decode tok/s | llama.cpp decode tok/s | engram decode / bandwidth (>= 0.70) | bandwidth GB/s | load avg |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
    console.log(`| ${r.model} | ${r.mib} | ${f(r.ePrefill)} | ${f(r.lPrefill)} | ${f(r.prefillRatio, 2)} | ${f(r.eDecode)} | ` +
        `${f(r.lDecode)} | ${f(r.roofline, 2)} | ${f(r.bw, 2)} | ${f(r.load, 2)} |`);
}
console.log(`\nCommand: node bench/llamacpp/compare.mjs --engram ${a.engram} -t ${a.threads} -p ${a.prompt} -n ${a.decode} ${a.models.join(" ")}`);
