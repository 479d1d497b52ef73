#!/usr/bin/env node
// Compares engram's token ids with the oracle's for every corpus line and prints each
// mismatch with its string and both id lists. Exit status 1 on any mismatch.
// Usage: node compare.js NAME corpus.jsonl expected.txt engram_output.jsonl
'use strict';
const fs = require('fs');
const [name, corpusFile, expectedFile, engramFile] = process.argv.slice(2);
const lines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter((l, i, a) => i < a.length - 1 || l);
const corpus = lines(corpusFile).map((l) => JSON.parse(l));
const expected = lines(expectedFile).map((l) => (l ? l.split(' ').map(Number) : []));
const got = lines(engramFile).map((l) => JSON.parse(l).ids);
if (expected.length !== corpus.length || got.length !== corpus.length) {
  console.error(`${name}: line counts differ: corpus ${corpus.length}, oracle ${expected.length}, engram ${got.length}`);
  process.exit(1);
}
let bad = 0;
for (let i = 0; i < corpus.length; ++i) {
  const a = expected[i], b = got[i];
  if (a.length === b.length && a.every((v, k) => v === b[k])) continue;
  ++bad;
  const it = corpus[i];
  console.log(`MISMATCH ${name} line ${i + 1} [${it.c}] ` +
      (it.hex !== undefined ? `bytes ${it.hex}` : JSON.stringify(it.s)));
  console.log(`  oracle: [${a.join(', ')}]`);
  console.log(`  engram: [${b.join(', ')}]`);
}
console.log(`${name}: ${corpus.length} strings, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
