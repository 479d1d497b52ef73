// `engram serve --embed-model FILE`: /v1/embeddings and the agent memory embed with the bert
// encoder (the vectors of the PyTorch reference), and a store whose embeddings that encoder
// made is refused to a server that would embed with its own model.
// Run by scripts/test_server.sh: node --test tests/server/
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";

import { GOLDEN, ROOT, post, startServer, tempDir } from "./server_harness.mjs";

const BERT = path.join(ROOT, "tests/fixtures/golden/bert_mean_f32.gguf");
const REFERENCE = JSON.parse(
  fs.readFileSync(path.join(ROOT, "tests/fixtures/golden/bert_mean_f32.json"), "utf8"));
const TEXT = "My sister lives in Paris.";
const want = REFERENCE.cases.find((c) => c.text === TEXT).embedding;

let server;
let dir;
let client;

before(async () => {
  dir = tempDir("embed-model");
  server = await startServer([
    "-m", GOLDEN, "--chat-template", "chatml",
    "--memory-db", path.join(dir, "m.db"), "--embed-model", BERT,
  ]);
  client = new OpenAI({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("--embed-model", () => {
  test("/v1/embeddings gives the encoder's vectors", async () => {
    const r = await client.embeddings.create({ model: "x", input: [TEXT, "hello world"],
                                               encoding_format: "float" });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0].embedding.length, 32);  // the encoder's width, not the model's 64
    r.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-4, `${i}: ${x}`));
  });

  test("memories are embedded by the encoder and found by cosine", async () => {
    const add = await post(server, "/v1/memories",
                           { messages: [{ role: "user", content: TEXT }], infer: false });
    assert.equal(add.status, 200, add.text);
    // No word of the query is in the memory: only the dense half can find it.
    const found = await post(server, "/v1/memories/search", { query: "xyzzy", limit: 5 });
    assert.equal(found.status, 200, found.text);
    assert.equal(found.json.results.length, 1);
    assert.equal(found.json.results[0].memory, TEXT);
  });

  test("a server embedding with its model refuses the encoder's store", async () => {
    await assert.rejects(
      startServer(["-m", GOLDEN, "--chat-template", "chatml",
                   "--memory-db", path.join(dir, "m.db")]),
      /embeddings were made by encoder 'bert:bert_mean_f32:32:mean:/);
  });
});
