#!/usr/bin/env node
// llama.cpp against the shipped chat model's golden fixtures (tests/fixtures/shipped_chat/
// greedy.json, made by tools/train/chat_fixtures.py): llama.cpp loads the GGUF, renders each
// conversation with the file's tokenizer.chat_template through its own (native) Jinja renderer,
// tokenizes the text with special tokens parsed, and decodes greedily.
//
//   node bench/llamacpp/chat_check.mjs [tests/fixtures/shipped_chat/greedy.json] [--model PATH]
//
// Prints one JSON line: how many prompts render to the fixture's text, tokenize to its ids,
// and give its greedy continuation. Cross-check tooling only, never a product dependency.
import fs from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const argv = process.argv.slice(2);
let fixture = path.join(root, "tests/fixtures/shipped_chat/greedy.json");
let modelPath = path.join(root, "models/engram-tiny-chat.gguf");
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--model") modelPath = argv[++i];
    else fixture = argv[i];
}
const g = JSON.parse(fs.readFileSync(fixture, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const template = model.fileInfo.metadata.tokenizer.chat_template;
const renderer = new llama._bindings.AddonJinjaRenderer(template);
const context = await model.createContext({contextSize: 512, threads: 1});
const seq = context.getSequence();
const bos = model.tokens.bos;
const pkg = JSON.parse(fs.readFileSync(path.join(root, "bench/llamacpp/package.json"), "utf8"));
const res = {model: path.relative(root, modelPath), node_llama_cpp: pkg.dependencies["node-llama-cpp"],
    prompts: g.prompts.length, rendered_equal: 0, tokens_equal: 0, continuation_equal: 0, mismatches: []};
for (const [i, p] of g.prompts.entries()) {
    const text = renderer.render({messages: p.messages, add_generation_prompt: true,
        bos_token: "<s>", eos_token: "<|im_end|>"});
    if (text === p.prompt_text) res.rendered_equal++;
    else res.mismatches.push({prompt: i, what: "render", got: text.slice(0, 200)});
    const ids = [bos, ...model.tokenize(p.prompt_text, true)];
    const same = ids.length === p.prompt.length && ids.every((t, j) => t === p.prompt[j]);
    if (same) res.tokens_equal++;
    else res.mismatches.push({prompt: i, what: "tokens", got: ids.slice(0, 40), want: p.prompt.slice(0, 40)});
    await seq.clearHistory();
    const got = [];
    let ended = true;  // node-llama-cpp ends the stream at an end-of-generation token without yielding it
    for await (const t of seq.evaluate(p.prompt, {temperature: 0})) {
        got.push(t);
        if (got.length >= p.continuation.length || t === g.eog_token) {
            ended = false;
            break;
        }
    }
    if (ended) got.push(g.eog_token);
    if (got.length === p.continuation.length && got.every((t, j) => t === p.continuation[j])) res.continuation_equal++;
    else res.mismatches.push({prompt: i, what: "continuation", got, want: p.continuation});
}
console.log(JSON.stringify(res));
