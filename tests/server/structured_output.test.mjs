// Structured output end to end (issue 17, acceptance 2): for each schema, 100 seeded
// generations at temperature 1 from the shipped chat model and from a random-weight golden
// model, through `engram serve`'s response_format; every reply must end (finish_reason "stop"),
// parse, and validate with ajv, an independent validator. GBNF files (JSON, arithmetic, chess
// moves, the agent memory's Add/Merge decision) through `engram run --grammar`: every output
// that ends must parse with a parser written here.
//
// A reply must end inside its token budget, and the engine does not steer towards an end (a
// grammar state knows no shortest completion yet): random weights write digits, string
// characters or list items for as long as the grammar lets them. So the schemas bound what
// they can (maxLength, maxItems, integer ranges, a $ref chain three deep instead of a
// recursive one); the extraction format is the agent memory's exact one for the shipped model
// (trained on it) and the same with bounds for the random one. Recursive $ref, unbounded
// strings and numbers are covered by the unit tests (tests/test_grammar.cpp).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Ajv from "ajv";

import { BIN, GOLDEN, ROOT, startServer } from "./server_harness.mjs";

const SHIPPED = path.join(ROOT, "models/engram-tiny-chat.gguf");
const SEEDS = 100;

// The agent memory's extraction reply (RMM's prospective reflection; docs/MODEL.md).
const extraction = {
  type: "object",
  properties: {
    extracted_memories: {
      type: "array",
      items: {
        type: "object",
        properties: {
          summary: { type: "string" },
          reference: { type: "array", items: { type: "integer" } },
        },
        required: ["summary", "reference"],
        additionalProperties: false,
      },
    },
  },
  required: ["extracted_memories"],
  additionalProperties: false,
};

// The same with bounds, for random weights.
const boundedExtraction = {
  type: "object",
  properties: {
    extracted_memories: {
      type: "array",
      maxItems: 3,
      items: {
        type: "object",
        properties: {
          summary: { type: "string", maxLength: 40 },
          reference: { type: "array", items: { type: "integer", minimum: 0, maximum: 99 }, maxItems: 3 },
        },
        required: ["summary", "reference"],
        additionalProperties: false,
      },
    },
  },
  required: ["extracted_memories"],
  additionalProperties: false,
};

const schemas = {
  nested: {
    type: "object",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 12 },
      address: {
        type: "object",
        properties: {
          city: { enum: ["Leeds", "Zürich", "東京"] },
          zip: { type: "string", pattern: "^[0-9]{5}$" },
          geo: {
            type: "object",
            properties: { lat: { type: "integer", minimum: -90, maximum: 90 } },
            required: ["lat"],
            additionalProperties: false,
          },
        },
        required: ["city", "zip", "geo"],
        additionalProperties: false,
      },
    },
    required: ["name", "address"],
    additionalProperties: false,
  },
  array_bounds: {
    type: "array", items: { type: "integer", minimum: 0, maximum: 9 }, minItems: 2, maxItems: 4,
  },
  enums: { enum: ["red", "green", "blue", 42, null, true] },
  formats: {
    type: "object",
    properties: {
      date: { type: "string", format: "date" },
      email: { type: "string", format: "email", maxLength: 30 },
      id: { type: "string", format: "uuid" },
      code: { type: "string", pattern: "^[A-Z]{3}-\\d{2,3}$" },
    },
    required: ["date", "email", "id", "code"],
    additionalProperties: false,
  },
  numbers: {
    type: "object",
    properties: {
      n: { type: "number", minimum: -10, maximum: 10 },
      i: { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 100 },
    },
    required: ["n", "i"],
    additionalProperties: false,
  },
  any_of: {
    anyOf: [
      { type: "integer", minimum: -1000, maximum: 1000 },
      { type: "object", properties: { k: { type: "boolean" } }, required: ["k"], additionalProperties: false },
      { type: "string", maxLength: 5 },
    ],
  },
  ref: {
    $defs: {
      leaf: { type: "object", properties: { v: { type: "integer", minimum: 0, maximum: 9 } }, required: ["v"], additionalProperties: false },
      mid: {
        type: "object",
        properties: { v: { $ref: "#/$defs/digit" }, kids: { type: "array", items: { $ref: "#/$defs/leaf" }, maxItems: 2 } },
        required: ["v", "kids"],
        additionalProperties: false,
      },
      digit: { type: "integer", minimum: 0, maximum: 9 },
    },
    type: "object",
    properties: { v: { $ref: "#/$defs/digit" }, kids: { type: "array", items: { $ref: "#/$defs/mid" }, maxItems: 2 } },
    required: ["v", "kids"],
    additionalProperties: false,
  },
};

// Formats checked here (ajv leaves them to plugins): written from RFC 3339, RFC 5322's
// dot-atom at an RFC 1034 host name, RFC 4122's textual form.
function validDate(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days[mo - 1];
}
const atext = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const emailRe = new RegExp(`^${atext}(?:\\.${atext})*@${label}(?:\\.${label})+$`);

function validator(schema) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addFormat("date", { validate: validDate });
  ajv.addFormat("email", emailRe);
  ajv.addFormat("uuid", /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/);
  return ajv.compile(schema);
}

const extractionPrompt = [
  {
    role: "system",
    content: 'Extract memories about the user from the conversation. Answer with JSON: {"extracted_memories": [{"summary": ..., "reference": [turn ids]}]}.',
  },
  {
    role: "user",
    content: "[0] User: My sister is called Alice.\n[1] Assistant: Got it.\n[2] User: I work at Northwind Bank.\n[3] Assistant: Thanks for telling me.",
  },
];
const plainPrompt = [{ role: "user", content: "Answer with JSON about my sister Alice, who lives in Leeds." }];

// Runs the 100 seeds two at a time (the servers have two slots) and checks every reply.
async function generateAll(server, model, name, schema) {
  const validate = validator(schema);
  const messages = name === "extraction" ? extractionPrompt : plainPrompt;
  const texts = new Set();
  const one = async (seed) => {
    const r = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model, messages, temperature: 1, seed, max_tokens: 1900,
        response_format: { type: "json_schema", json_schema: { name, schema, strict: true } },
      }),
    });
    const j = await r.json();
    assert.equal(r.status, 200, `${name} seed ${seed}: ${JSON.stringify(j)}`);
    const text = j.choices[0].message.content;
    assert.equal(j.choices[0].finish_reason, "stop", `${name} seed ${seed} did not end: ${text}`);
    let value;
    assert.doesNotThrow(() => (value = JSON.parse(text)), `${name} seed ${seed}: not JSON: ${text}`);
    assert.ok(validate(value), `${name} seed ${seed}: ${text}: ${JSON.stringify(validate.errors)}`);
    texts.add(text);
  };
  for (let seed = 1; seed <= SEEDS; seed += 2) await Promise.all([one(seed), one(seed + 1)]);
  // Temperature 1: the seeds do differ (an enum of six values still shows several).
  assert.ok(texts.size >= (name === "enums" ? 2 : 20), `${name}: only ${texts.size} distinct replies`);
}

for (const [label, model, args, extractionSchema] of [
  // Both like JSON whitespace (up to 24 bytes per gap; the chat model has a 24-space token) and
  // have short trained contexts (256, 512): a larger context leaves room to finish.
  ["random-weight golden model (llama_f32)", "llama_f32", ["-m", GOLDEN, "--chat-template", "chatml", "--ctx", "2048"], boundedExtraction],
  ["shipped chat model", "engram-tiny-chat", ["-m", SHIPPED, "--ctx", "2048"], extraction],
]) {
  describe(`json_schema, ${SEEDS} seeds each: ${label}`, () => {
    let server;
    before(async () => {
      server = await startServer([...args, "--parallel", "2", "-q"]);
    });
    after(async () => {
      await server?.stop();
    });
    test("extraction", async () => generateAll(server, model, "extraction", extractionSchema));
    for (const [name, schema] of Object.entries(schemas)) {
      test(name, async () => generateAll(server, model, name, schema));
    }
  });
}

// ---- GBNF ----

// Recursive-descent checkers for the fixture grammars, written from their text.
function parsesArithmetic(s) {
  let i = 0;
  const ws = () => { while (s[i] === " ") i++; };
  const factor = () => {
    if (s[i] === "(") {
      i++; ws();
      if (!sum()) return false;
      ws();
      if (s[i] !== ")") return false;
      i++;
      return true;
    }
    const start = i;
    while (s[i] >= "0" && s[i] <= "9") i++;
    return i > start;
  };
  const chain = (item, ops) => {
    if (!item()) return false;
    for (;;) {
      const save = i;
      ws();
      if (!ops.includes(s[i])) { i = save; return true; }
      i++; ws();
      if (!item()) return false;
    }
  };
  const product = () => chain(factor, "*/");
  const sum = () => chain(product, "+-");
  return sum() && i === s.length;
}
const move = "(?:O-O(?:-O)?[+#]?|[KQRBN][a-h1-8]?x?[a-h][1-8][+#]?|(?:[a-h]x)?[a-h][1-8](?:=[QRBN])?[+#]?)";
const chessRe = new RegExp(`^[1-9][0-9]?\\. ${move}(?: ${move})?(?: [1-9][0-9]?\\. ${move}(?: ${move})?)*$`);
const addMergeRe = /^(?:Add\(\)|Merge\([1-9][0-9]?, "[^"\\\u0000-\u001f]{1,120}"\))$/u;

const gbnf = [
  ["json.gbnf", (s) => { JSON.parse(s); return true; }],
  ["arithmetic.gbnf", parsesArithmetic],
  ["chess.gbnf", (s) => chessRe.test(s)],
  ["add_merge.gbnf", (s) => addMergeRe.test(s)],
];

describe("GBNF fixtures constrain `engram run --grammar`", () => {
  // The checkers refuse what the grammars refuse (so a pass means something).
  test("the checkers refuse near misses", () => {
    assert.ok(parsesArithmetic("2 * (3 + 4)") && !parsesArithmetic("2 * (3 + 4") && !parsesArithmetic("2 +"));
    assert.ok(chessRe.test("1. e4 e5 2. Nf3") && !chessRe.test("1. e9") && !chessRe.test("e4 e5"));
    assert.ok(addMergeRe.test('Merge(2, "User likes tea.")') && !addMergeRe.test("Merge(0, \"x\")"));
  });
  for (const [file, parses] of gbnf) {
    test(file, () => {
      const grammar = path.join(ROOT, "tests/fixtures/grammar", file);
      let endedTotal = 0;
      for (const [model, extra] of [[GOLDEN, ["--ctx", "1024"]], [SHIPPED, []]]) {
        let ended = 0;
        const outputs = new Set();
        for (let seed = 1; seed <= 8; seed++) {
          const r = spawnSync(BIN, [
            "run", "-m", model, ...extra, "-p", "Answer:", "--temp", "1", "--seed", String(seed),
            "-n", "160", "-t", "1", "--grammar", grammar,
          ], { encoding: "utf8" });
          assert.equal(r.status, 0, `${file} seed ${seed}: ${r.stderr}`);
          // stdout: the prompt, the generated text, a newline; stderr: how many tokens.
          assert.ok(r.stdout.startsWith("Answer:"), r.stdout);
          const text = r.stdout.slice("Answer:".length).replace(/\n$/, "");
          outputs.add(text);
          const n = Number(/generated: (\d+) tokens/.exec(r.stderr)?.[1]);
          if (!(n < 160)) continue;  // ran out of tokens: not a whole sentence
          ended++;
          let ok = false;
          try {
            ok = parses(text);
          } catch {
            ok = false;
          }
          assert.ok(ok, `${file} ${path.basename(model)} seed ${seed}: ${JSON.stringify(text)}`);
        }
        assert.ok(outputs.size >= 3, `${file}: the seeds gave ${outputs.size} distinct outputs`);
        endedTotal += ended;
      }
      // Unbounded repetitions (digits, moves) need not end within the budget, but some do.
      assert.ok(endedTotal >= 2, `${file}: only ${endedTotal} of 16 runs ended`);
    });
  }
});
