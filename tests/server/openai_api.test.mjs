// `engram serve` driven by the official `openai` client (and raw HTTP where the client would
// hide what is checked). Run by scripts/test_server.sh: node --test tests/server/
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import Ajv from "ajv";
import OpenAI from "openai";

import { GOLDEN, chatRun, post, sseData, startServer, tempDir } from "./server_harness.mjs";

const KEY_A = "key-a-0123456789";
const KEY_B = "key-b-9876543210";
const MODEL_ARGS = ["-m", GOLDEN, "--chat-template", "chatml"];

let server;
let sessions;
let a; // client with key A
let b; // client with key B

before(async () => {
  sessions = tempDir("sessions");
  server = await startServer([
    ...MODEL_ARGS,
    "--api-key", KEY_A, "--api-key", KEY_B,
    "--parallel", "4", "--sessions-dir", sessions, "--max-body", "1",
  ]);
  a = new OpenAI({ baseURL: server.url, apiKey: KEY_A, maxRetries: 0 });
  b = new OpenAI({ baseURL: server.url, apiKey: KEY_B, maxRetries: 0 });
});

after(async () => {
  await server?.stop();
  fs.rmSync(sessions, { recursive: true, force: true });
});

const hello = [{ role: "user", content: "the cat sat on the mat" }];

describe("models", () => {
  test("lists the served model", async () => {
    const list = await a.models.list();
    assert.deepEqual(list.data.map((m) => m.id), ["llama_f32"]);
    assert.equal(list.data[0].object, "model");
  });
});

describe("chat completions", () => {
  test("a reply with usage figures", async () => {
    const r = await a.chat.completions.create({
      model: "llama_f32", messages: hello, max_tokens: 12, temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, "assistant");
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 5);
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.ok(r.usage.prompt_tokens_details.cached_tokens >= 0);
  });

  test("streaming gives the same text as a whole reply, role first, finish last", async () => {
    const whole = await a.chat.completions.create({
      model: "llama_f32", messages: hello, max_tokens: 16, temperature: 0,
    });
    const stream = await a.chat.completions.create({
      model: "llama_f32", messages: hello, max_tokens: 16, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    const last = withChoices[withChoices.length - 1];
    assert.equal(last.choices[0].finish_reason, whole.choices[0].finish_reason);
    for (const c of withChoices.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
    const text = withChoices.map((c) => c.choices[0].delta.content ?? "").join("");
    assert.equal(text, whole.choices[0].message.content);
    const usage = chunks[chunks.length - 1];
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.completion_tokens, whole.usage.completion_tokens);
    assert.equal(usage.usage.prompt_tokens, whole.usage.prompt_tokens);
  });

  test("the raw stream is SSE chat.completion.chunk events ending in [DONE]", async () => {
    const r = await post(server, "/v1/chat/completions",
      { messages: hello, max_tokens: 4, stream: true, temperature: 0 },
      { Authorization: `Bearer ${KEY_A}` });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /text\/event-stream/);
    const data = sseData(r.text);
    assert.equal(data[data.length - 1], "[DONE]");
    for (const d of data.slice(0, -1)) {
      const c = JSON.parse(d);
      assert.equal(c.object, "chat.completion.chunk");
      assert.equal(c.usage, undefined);
    }
  });

  test("a stop string ends the reply before it", async () => {
    const whole = await a.chat.completions.create({
      model: "llama_f32", messages: hello, max_tokens: 24, temperature: 0,
    });
    const text = whole.choices[0].message.content;
    // Two printable ASCII characters after the start (the golden model's replies are mostly
    // stray bytes, shown as U+FFFD, which a stop string cannot name).
    const at = [...text.matchAll(/[ -~]{2}/g)].map((m) => m.index).find((i) => i >= 1);
    assert.ok(at !== undefined, `no printable pair to stop at: ${JSON.stringify(text)}`);
    const stop = text.slice(at, at + 2);
    const cut = await a.chat.completions.create({
      model: "llama_f32", messages: hello, max_tokens: 24, temperature: 0, stop: [stop],
    });
    assert.equal(cut.choices[0].message.content, text.slice(0, text.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, "stop");
  });

  test("a seed reproduces a sampled reply", async () => {
    const ask = (seed) => a.chat.completions.create({
      model: "llama_f32", messages: hello, max_tokens: 24, temperature: 1, seed,
    }).then((r) => r.choices[0].message.content);
    const first = await ask(42);
    assert.equal(await ask(42), first);
    const others = await Promise.all([ask(1), ask(2), ask(3)]);
    assert.ok(others.some((t) => t !== first), "three other seeds all gave the same text");
  });

  test("n other than 1 is a clear 400", async () => {
    await assert.rejects(
      a.chat.completions.create({ model: "llama_f32", messages: hello, n: 2 }),
      (e) => e.status === 400 && e.error.param === "n");
  });
});

describe("structured output", () => {
  // A maxLength string of byte tokens: the closing quote was once refused after multi-byte
  // characters (a 500); tests/server/structured_output.test.mjs covers many more schemas.
  const schema = {
    type: "object",
    properties: {
      name: { enum: ["ann", "bob", "carol"] },
      nick: { type: "string", maxLength: 3 },
      age: { type: "integer", minimum: 0, maximum: 120 },
      tags: { type: "array", items: { enum: ["red", "green"] }, maxItems: 3 },
    },
    required: ["name", "age", "tags", "nick"],
    additionalProperties: false,
  };

  // The golden model's random weights like whitespace, which JSON allows anywhere between
  // tokens: a reply may fill the context first (finish_reason "length"). Every reply that ends
  // must parse and validate, and most must end.
  test("json_schema replies parse and validate (ajv), over seeds", async () => {
    const validate = new Ajv({ strict: false }).compile(schema);
    let ended = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const r = await a.chat.completions.create({
        model: "llama_f32", messages: hello, temperature: 1, seed, max_tokens: 190,
        response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
      });
      const text = r.choices[0].message.content;
      if (r.choices[0].finish_reason !== "stop") continue;
      ended++;
      const value = JSON.parse(text);
      assert.ok(validate(value), `seed ${seed}: ${text}: ${JSON.stringify(validate.errors)}`);
    }
    assert.ok(ended >= 5, `only ${ended} of 10 replies ended`);
  });

  test("json_object replies are JSON objects", async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const r = await a.chat.completions.create({
        model: "llama_f32", messages: hello, temperature: 1, seed, max_tokens: 190,
        response_format: { type: "json_object" },
      });
      const text = r.choices[0].message.content;
      if (r.choices[0].finish_reason !== "stop") continue;
      const value = JSON.parse(text);
      assert.ok(value !== null && typeof value === "object" && !Array.isArray(value), text);
    }
  });
});

describe("completions", () => {
  test("whole and streamed", async () => {
    const r = await a.completions.create({
      model: "llama_f32", prompt: "the cat", max_tokens: 8, temperature: 0,
    });
    assert.equal(r.object, "text_completion");
    assert.equal(typeof r.choices[0].text, "string");
    assert.ok(r.usage.completion_tokens >= 1);
    const stream = await a.completions.create({
      model: "llama_f32", prompt: "the cat", max_tokens: 8, temperature: 0, stream: true,
    });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    assert.equal(text, r.choices[0].text);
  });
});

describe("embeddings", () => {
  test("unit vectors of the model's width, equal for equal inputs", async () => {
    const r = await a.embeddings.create({
      model: "llama_f32", input: ["the cat sat", "on the mat", "the cat sat"],
      encoding_format: "float",
    });
    assert.equal(r.data.length, 3);
    for (const d of r.data) {
      assert.equal(d.embedding.length, 64);
      const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
    }
    assert.deepEqual(r.data[0].embedding, r.data[2].embedding);
    assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
    assert.ok(r.usage.prompt_tokens > 0);
    // The client's default (base64) decodes to the same floats.
    const b64 = await a.embeddings.create({ model: "llama_f32", input: "the cat sat" });
    b64.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - r.data[0].embedding[i]) < 1e-7));
  });
});

describe("named conversations", () => {
  const turns = ["hello there", "the cat sat on the mat", "and then it went home"];

  test("three requests give the replies of one `engram chat` run (greedy)", async () => {
    const expected = chatRun([...MODEL_ARGS, "-n", "8", "--temp", "0"], turns);
    const got = [];
    for (const t of turns) {
      const r = await a.chat.completions.create({
        model: "llama_f32", max_tokens: 8, temperature: 0,
        messages: [{ role: "user", content: t }],
        conversation: "three-turns",
      });
      got.push(r.choices[0].message.content);
      if (got.length > 1) assert.ok(r.usage.prompt_tokens_details.cached_tokens > 0);
    }
    assert.deepEqual(got, expected.filter((m) => m.role === "assistant").map((m) => m.content));
  });

  test("the header names a conversation too, and resending the history adds nothing twice",
    async () => {
      const opts = { headers: { "X-Engram-Conversation": "by-header" } };
      const first = await a.chat.completions.create(
        { model: "llama_f32", max_tokens: 6, temperature: 0, messages: [hello[0]] }, opts);
      const history = [hello[0], { role: "assistant", content: first.choices[0].message.content },
        { role: "user", content: "again" }];
      const whole = await a.chat.completions.create(
        { model: "llama_f32", max_tokens: 6, temperature: 0, messages: history }, opts);
      const onlyNew = chatRun([...MODEL_ARGS, "-n", "6", "--temp", "0"],
        [hello[0].content, "again"]);
      assert.equal(whole.choices[0].message.content, onlyNew[3].content);
    });

  test("another key's conversation is not found", async () => {
    await assert.rejects(
      b.chat.completions.create({
        model: "llama_f32", max_tokens: 4, messages: hello, conversation: "three-turns",
      }),
      (e) => e.status === 404 && e.error.code === "conversation_not_found");
    const del = await fetch(`${server.url}/conversations/three-turns`, {
      method: "DELETE", headers: { Authorization: `Bearer ${KEY_B}` },
    });
    assert.equal(del.status, 404);
  });

  test("ids that could name a path are refused", async () => {
    for (const id of ["../x", "a/b", "", "x".repeat(65), "a b"]) {
      await assert.rejects(
        a.chat.completions.create({ model: "llama_f32", messages: hello, conversation: id }),
        (e) => e.status === 400 && e.error.param === "conversation", id);
    }
  });

  test("a conversation resumes after the server is killed and restarted", async () => {
    const dir = tempDir("restart");
    const args = [...MODEL_ARGS, "--sessions-dir", dir, "--memory", "sinks"];
    const ask = (client, id, content) => client.chat.completions.create({
      model: "llama_f32", max_tokens: 8, temperature: 0,
      messages: [{ role: "user", content }], conversation: id,
    });
    let s = await startServer(args);
    let c = new OpenAI({ baseURL: s.url, apiKey: "none", maxRetries: 0 });
    const r1 = await ask(c, "kept", "the cat sat on the mat");
    await ask(c, "control", "the cat sat on the mat");
    const control = await ask(c, "control", "and then it went home");
    await s.kill(); // SIGKILL: nothing is saved at exit; the last reply was saved when it ended
    s = await startServer(args);
    c = new OpenAI({ baseURL: s.url, apiKey: "none", maxRetries: 0 });
    const r2 = await ask(c, "kept", "and then it went home");
    assert.equal(r2.choices[0].message.content, control.choices[0].message.content);
    assert.equal(r2.usage.prompt_tokens, control.usage.prompt_tokens);
    assert.ok(r2.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens);
    const stopped = await s.stop();
    assert.equal(stopped.code, 0, s.log);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("errors", () => {
  test("a bad or missing key is 401 authentication_error", async () => {
    const bad = new OpenAI({ baseURL: server.url, apiKey: "wrong", maxRetries: 0 });
    await assert.rejects(bad.models.list(),
      (e) => e.status === 401 && e.error.type === "authentication_error");
    const r = await fetch(`${server.url}/models`);
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.type, "authentication_error");
    assert.equal((await fetch(`${server.base}/health`)).status, 200); // public
  });

  const auth = { Authorization: `Bearer ${KEY_A}` };
  const cases = [
    ["not JSON", "{\"messages\": [", null, /not valid JSON/],
    ["not an object", "[1, 2]", null, /JSON object/],
    ["no messages", { model: "x" }, "messages", /required/],
    ["empty messages", { messages: [] }, "messages", /at least one/],
    ["a bad role", { messages: [{ role: "wizard", content: "x" }] }, "messages[0].role", /wizard/],
    ["content of the wrong type", { messages: [{ role: "user", content: 3 }] },
      "messages[0].content", /string/],
    ["temperature as text", { messages: hello, temperature: "hot" }, "temperature", /number/],
    ["temperature out of range", { messages: hello, temperature: 9 }, "temperature", /between/],
    ["max_tokens too large", { messages: hello, max_tokens: 1e9 }, "max_tokens", /between/],
    ["an unknown field", { messages: hello, frobnicate: 1 }, "frobnicate", /unrecognized/],
    ["an unknown response_format", { messages: hello, response_format: { type: "xml" } },
      "response_format.type", /not one of/],
    ["a schema that does not compile",
      { messages: hello, response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: 5 } } } },
      "response_format.json_schema.schema", /type/],
  ];
  for (const [name, body, param, message] of cases) {
    test(`400 for ${name}`, async () => {
      const r = await post(server, "/v1/chat/completions", body, auth);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.type, "invalid_request_error");
      assert.equal(r.json.error.param, param);
      assert.match(r.json.error.message, message);
    });
  }

  test("413 for a body over --max-body, 404 for an unknown route, both as error objects",
    async () => {
      const big = await post(server, "/v1/chat/completions",
        { messages: [{ role: "user", content: "x".repeat(2 << 20) }] }, auth);
      assert.equal(big.status, 413);
      assert.equal(big.json.error.code, "payload_too_large");
      const missing = await post(server, "/v1/nothing", {}, auth);
      assert.equal(missing.status, 404);
      assert.equal(missing.json.error.type, "invalid_request_error");
    });

  test("a prompt the context cannot hold is a 400 naming it", async () => {
    const r = await post(server, "/v1/chat/completions",
      { messages: [{ role: "user", content: "the cat sat on the mat ".repeat(200) }] }, auth);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /the context holds 256/);
  });
});

describe("metrics", () => {
  test("Prometheus text with requests and tokens", async () => {
    const r = await fetch(`${server.base}/metrics`, { headers: { Authorization: `Bearer ${KEY_A}` } });
    assert.equal(r.status, 200);
    const text = await r.text();
    const value = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))[1]);
    assert.ok(value("engram_completion_tokens_total") > 0);
    assert.ok(value("engram_prompt_tokens_total") > 0);
    assert.equal(value("engram_slots_total"), 4);
    assert.match(text, /engram_requests_total\{outcome="ok"\} [1-9]/);
    assert.match(text, /# TYPE engram_decode_tokens_per_second gauge/);
  });
});
