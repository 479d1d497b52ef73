// Code point range tables for the generators of src/tokenizer/*_tables.cpp: the ranges of
// code points a regex matches, and their C++ text.
'use strict';

// Sorted inclusive [lo, hi] ranges of the code points `re` matches (surrogates never: the
// tokenizers see valid UTF-8 only).
function ranges(re) {
  const out = [];
  let start = -1;
  for (let cp = 0; cp <= 0x110000; ++cp) {
    const inside = cp < 0x110000 && !(cp >= 0xd800 && cp <= 0xdfff) &&
        re.test(String.fromCodePoint(cp));
    if (inside && start < 0) start = cp;
    if (!inside && start >= 0) {
      out.push([start, cp - 1]);
      start = -1;
    }
  }
  return out;
}

const hex = (v) => '0x' + v.toString(16).toUpperCase();

// `const CodepointRange name[] = {...}; const size_t name_size = N;`
function emit(name, rs) {
  const lines = [];
  for (let i = 0; i < rs.length; i += 4) {
    lines.push('    ' + rs.slice(i, i + 4).map(([a, b]) => `{${hex(a)}, ${hex(b)}}`).join(', ') + ',');
  }
  return `const CodepointRange ${name}[] = {\n${lines.join('\n')}\n};\n` +
      `const size_t ${name}_size = ${rs.length};\n`;
}

module.exports = {ranges, hex, emit};
