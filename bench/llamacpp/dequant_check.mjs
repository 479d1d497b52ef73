#!/usr/bin/env node
// Independent check of engram's dequantization fixtures with llama.cpp's own dequantizer.
//
//   /usr/bin/python3 tools/py/quant_ref.py --llamacpp-probes build/quant-probe
//   node bench/llamacpp/dequant_check.mjs build/quant-probe/probe_*.json
//
// Each probe model (see write_llamacpp_probes in tools/py/quant_ref.py) stores the fixture's
// quantized blocks as token_embd in a llama whose layers are zero and whose output matrix is
// the identity, so llama.cpp's logits for token r are rmsnorm(dequantized row r). We compare
// them with quant_TYPE.f32 (the numpy reference) normalised the same way.
import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const files = process.argv.slice(2);
if (files.length === 0) {
    console.error("usage: node dequant_check.mjs PROBE.json [PROBE.json ...]");
    process.exit(2);
}
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
let allOk = true;
for (const f of files) {
    const meta = JSON.parse(fs.readFileSync(f, "utf8"));
    const E = meta.n_embd;
    const buf = fs.readFileSync(meta.reference);
    const ref = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    if (ref.length !== meta.rows * E) throw new Error(`${meta.reference}: ${ref.length} values, want ${meta.rows * E}`);

    const model = await llama.loadModel({modelPath: meta.model, gpuLayers: 0});
    const context = await model.createContext({
        contextSize: 64, batchSize: 64, threads: 1, sequences: 1,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = context.getSequence();
    const input = [];
    for (let r = 0; r < meta.rows; r++) input.push([r, {generateNext: {logits: true}}]);
    const out = await seq.controlledEvaluate(input);

    let worstRel = 0, worstRow = -1;
    for (let r = 0; r < meta.rows; r++) {
        const logits = out[r]?.next?.logits;
        if (!logits) throw new Error(`${meta.model}: no logits for row ${r}`);
        let ss = 0, rowMax = 0;
        for (let i = 0; i < E; i++) ss += ref[r * E + i] ** 2;
        const scale = 1 / Math.sqrt(ss / E + meta.eps);
        for (let i = 0; i < E; i++) rowMax = Math.max(rowMax, Math.abs(ref[r * E + i] * scale));
        for (let i = 0; i < E; i++) {
            const want = ref[r * E + i] * scale;
            const got = logits.get(i) ?? 0;
            const rel = Math.abs(got - want) / Math.max(rowMax, 1e-30);
            if (rel > worstRel) { worstRel = rel; worstRow = r; }
        }
    }
    const ok = worstRel < 1e-5;
    allOk &&= ok;
    console.log(JSON.stringify({type: meta.type, rows: meta.rows, n_embd: E,
        max_diff_relative_to_row_max: worstRel, worst_row: worstRow, agrees: ok}));
    await context.dispose();
    await model.dispose();
}
process.exit(allOk ? 0 : 1);
